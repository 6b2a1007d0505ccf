"""What a streaming transcriber transcribes, and when its text becomes final.

Every policy takes the chunks of a :class:`~edgebench.agent.streaming.paced_source.PacedSource` in order
and answers each with an :class:`Update`: the words that became final (never taken back: a live caption
cannot unprint), the tentative words shown after them, and the audio time up to which everything is
final, which is what finalisation latency is measured against.

- ``chunk``: each chunk transcribed on its own, its text final at once (what most Pi projects do:
  cheap, but a word cut by a chunk boundary is cut in the text too);
- ``local-agreement``: LocalAgreement-2 (Macháček, Dabre and Bojar, "Turning Whisper into Real-Time
  Transcription System", 2023): a growing buffer re-transcribed at every chunk, the words two consecutive
  hypotheses agree on (after the committed ones, found in each new hypothesis by alignment) committed,
  the rest shown as partial text. Whisper here decodes without timestamps, so the buffer is trimmed
  where its text is wholly committed and a further chunk added no word (a pause), and at most every
  :data:`MAX_BUFFER_S` (everything committed then);
- ``vad``: utterances cut at pauses by a voice activity detector (``vad.py``), each transcribed once
  it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgebench.agent.accuracy import normalize
from edgebench.agent.scenarios.base import SAMPLE_RATE
from edgebench.agent.streaming.paced_source import Chunk

POLICIES = ("chunk", "local-agreement", "vad")
MAX_BUFFER_S = 20.0
"""local-agreement: a buffer this long is committed whole and restarted (Whisper's window is 30 s; the
re-transcription cost grows with the buffer)."""

Transcriber = Callable[[np.ndarray], str]


@dataclass
class Update:
    committed: list[str] = field(default_factory=list)
    """Words final from now on (appended to the transcript)."""
    partial: list[str] = field(default_factory=list)
    """Tentative words after everything committed (shown greyed in a live caption)."""
    final_until_s: float = 0.0
    """Audio time up to which the transcript is final."""
    transcribed_s: float = 0.0
    """Seconds of audio the model transcribed for this update (re-transcription included)."""


class Policy:
    name: str
    gives_partials = False
    forced_commits = 0
    """local-agreement: times the buffer hit :data:`MAX_BUFFER_S` and was committed without agreement."""

    def __init__(self, transcribe: Transcriber) -> None:
        self.transcribe = transcribe

    def feed(self, chunk: Chunk) -> Update:
        raise NotImplementedError

    def finish(self, end_s: float) -> Update:
        """After the last chunk: whatever is pending becomes final."""
        return Update(final_until_s=end_s)


def words(text: str) -> list[str]:
    return text.split()


class ChunkPolicy(Policy):
    name = "chunk"

    def feed(self, chunk: Chunk) -> Update:
        return Update(words(self.transcribe(chunk.audio)), [], chunk.end_s, len(chunk.audio) / SAMPLE_RATE)


def agreed_prefix(a: list[str], b: list[str]) -> int:
    """How many leading words two hypotheses share (compared normalised: case and punctuation aside)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if normalize(x) != normalize(y):
            break
        n += 1
    return n


def after_committed(hypothesis: list[str], committed: list[str]) -> int:
    """Where the committed words end in a new hypothesis of the same buffer. A longer buffer may decode
    earlier words anew ("Rice is" / "Rising"), so the committed words are aligned on the hypothesis
    (normalised, difflib) rather than counted: the end of the match that reaches the last committed
    word; when the last one or two were themselves decoded anew, as many words past the last match."""
    from difflib import SequenceMatcher

    if not committed:
        return 0
    a = [normalize(w) for w in committed]
    b = [normalize(w) for w in hypothesis]
    # near where they stand only: a later copy of a common word ("the") must not pull the match past
    # new words
    matcher = SequenceMatcher(None, a, b[: len(a) + 2], autojunk=False)
    blocks = [m for m in matcher.get_matching_blocks() if m.size and abs(m.b - m.a) <= 2]
    if blocks:
        last = blocks[-1]
        missing = len(a) - (last.a + last.size)
        if missing <= 2:
            return min(len(b), last.b + last.size + missing)
    # nothing recognisable: skip as many letters as were committed
    need = sum(len(w.replace(" ", "")) for w in a)
    have = 0
    for k, word in enumerate(b):
        if have >= need:
            return k
        have += len(word.replace(" ", ""))
    return len(b)


class LocalAgreementPolicy(Policy):
    name = "local-agreement"
    gives_partials = True

    def __init__(self, transcribe: Transcriber) -> None:
        super().__init__(transcribe)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start_s = 0.0
        self.committed: list[str] = []
        """Words of the current buffer already committed."""
        self.previous: list[str] | None = None
        """The previous hypothesis's words after the committed ones (None: none since the last trim)."""
        self.previous_end_s = 0.0
        self.final_until_s = 0.0

    def feed(self, chunk: Chunk) -> Update:
        self.buffer = np.concatenate([self.buffer, chunk.audio])
        hypothesis = words(self.transcribe(self.buffer))
        transcribed = len(self.buffer) / SAMPLE_RATE
        tail = hypothesis[after_committed(hypothesis, self.committed) :]
        new: list[str] = []
        if self.previous is not None:
            new = tail[: agreed_prefix(self.previous, tail)]
            self.committed += new
        partial = tail[len(new) :]
        if chunk.end_s - self.buffer_start_s >= MAX_BUFFER_S:
            new += partial
            self.forced_commits += 1
            self._trim(chunk.end_s)
            return Update(new, [], self.final_until_s, transcribed)
        if self.previous is not None and not partial and not self.previous[len(new) :]:
            # two hypotheses agree on every word and all is committed: the transcript of all the audio so
            # far is final (the latest hypothesis decoded the last chunk too and found no new word); the
            # last chunk stays in the buffer (it may hold the onset of a next word, which will come after
            # this text)
            self._trim(self.previous_end_s, final_s=chunk.end_s)
        else:
            self.previous, self.previous_end_s = partial, chunk.end_s
        return Update(new, partial, self.final_until_s, transcribed)

    def _trim(self, at_s: float, final_s: float | None = None) -> None:
        drop = round((at_s - self.buffer_start_s) * SAMPLE_RATE)
        self.buffer = self.buffer[drop:]
        self.buffer_start_s = at_s
        self.final_until_s = max(self.final_until_s, at_s if final_s is None else final_s)
        self.committed, self.previous, self.previous_end_s = [], None, at_s

    def finish(self, end_s: float) -> Update:
        if len(self.buffer) == 0:
            return Update(final_until_s=end_s)
        hypothesis = words(self.transcribe(self.buffer))
        transcribed = len(self.buffer) / SAMPLE_RATE
        # the end of the stream: the last hypothesis is all there will be
        new = hypothesis[after_committed(hypothesis, self.committed) :]
        self._trim(end_s)
        return Update(new, [], end_s, transcribed)


class VadPolicy(Policy):
    name = "vad"

    def __init__(self, transcribe: Transcriber) -> None:
        from edgebench.agent.streaming.vad import VoiceActivity

        super().__init__(transcribe)
        self.vad = VoiceActivity()
        self.kept = np.zeros(0, dtype=np.float32)
        self.kept_from_s = 0.0
        self.final_until_s = 0.0

    def _segments(self, closed: list[tuple[float, float]]) -> Update:
        new: list[str] = []
        transcribed = 0.0
        for start, end in closed:
            lo = max(0, round((start - self.kept_from_s) * SAMPLE_RATE))
            hi = round((end - self.kept_from_s) * SAMPLE_RATE)
            audio = self.kept[lo:hi]
            if len(audio):
                new += words(self.transcribe(audio))
                transcribed += len(audio) / SAMPLE_RATE
        return Update(new, [], 0.0, transcribed)

    def feed(self, chunk: Chunk) -> Update:
        from edgebench.agent.streaming.vad import undecided_s

        self.kept = np.concatenate([self.kept, chunk.audio])
        update = self._segments(self.vad.push(chunk.audio))
        open_since = self.vad.start_s
        # with no utterance open, the audio is final except what the detector may still count as the
        # start of one (its pre-roll and the frame it has not seen whole)
        final = chunk.end_s - undecided_s(self.vad) if open_since is None else open_since
        self.final_until_s = max(self.final_until_s, final)
        update.final_until_s = self.final_until_s
        keep_from = chunk.end_s - 1.0 if open_since is None else open_since  # the detector's pre-roll
        drop = round((keep_from - self.kept_from_s) * SAMPLE_RATE)
        if drop > 0:
            self.kept = self.kept[drop:]
            self.kept_from_s += drop / SAMPLE_RATE
        return update

    def finish(self, end_s: float) -> Update:
        update = self._segments(self.vad.flush(end_s))
        update.final_until_s = end_s
        return update


def make_policy(name: str, transcribe: Transcriber) -> Policy:
    classes = {"chunk": ChunkPolicy, "local-agreement": LocalAgreementPolicy, "vad": VadPolicy}
    return classes[name](transcribe)
