"""Generate ``mel_filters.npz``, the mel filterbanks shipped with the log-mel front end.

Run once (``python models/frontend/make_mel_filters.py``) and commit the result. The filters are
computed offline, as OpenAI Whisper does, because librosa is an optional extra and importing it costs
seconds on a Raspberry Pi; at run time the front end only needs numpy to load them.

The parameters are the ones Whisper was trained with: ``librosa.filters.mel(sr=16000, n_fft=400,
n_mels=n)`` with librosa's defaults (Slaney mel scale, Slaney area normalisation). ``mel_80`` serves
Whisper tiny … large-v2 and the hybrid models; ``mel_128`` serves large-v3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
MEL_SIZES = (80, 128)
OUTPUT = Path(__file__).with_name("mel_filters.npz")


def main() -> None:
    """Write ``mel_filters.npz`` next to this script."""
    import librosa

    arrays = {
        f"mel_{n}": librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n).astype(np.float32)
        for n in MEL_SIZES
    }
    # Compressed: the filters are mostly zeros, so this keeps the shipped file small.
    np.savez_compressed(OUTPUT, **arrays)
    for name, value in arrays.items():
        print(f"{name}: {value.shape} {value.dtype}")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
