"""Live speech on the device: the dataset as one continuous stream, fed at real-time pace to a
streaming policy, and what a user of live captions feels (``--scenario stream``, docs/streaming.md).

- ``stream_audio.py``: the stream itself (utterances joined with pauses, looped for ``--stream-minutes``)
  and where each utterance lies in it;
- ``paced_source.py``: a thread releasing chunks at absolute monotonic deadlines, as a microphone would;
- ``policies.py``: what is transcribed when (fixed chunks, LocalAgreement-2, voice activity);
- ``vad.py``: the voice activity detector of the ``vad`` policy (WebRTC's, through webrtcvad-wheels);
- ``metrics.py``: the timeline of one stream turned into the result's figures.
"""
