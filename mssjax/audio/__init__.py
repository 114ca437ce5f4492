"""Load and save audio files: `mssjax.audio.reading` and `mssjax.audio.writing`, one namespace.

``load`` reads wav, flac, ogg and aiff through libsndfile (``soundfile``) and
mp3, m4a, mp4 and multi-stream ``.stem.mp4`` (the MUSDB18 format) through PyAV,
whose wheels carry ffmpeg's libraries, so no system ffmpeg is needed; audio
comes back as float32 numpy ``[2, n_samples]``. ``read_blocks`` decodes a
file block by block.

``save`` and ``save_set`` write arrays atomically; ``BlockWriter`` and
``EncoderWriter`` write a stream block by block in wav, flac, ogg, mp3 or m4a,
as an `OutputFormat` chooses (bit depth with dither and counted clipping, or
bit rate). Every problem with a file raises `AudioError` naming the file.
"""

from mssjax.audio.reading import (SOUNDFILE_EXTENSIONS, AudioInfo, as_stereo, check_finite, info, load, load_stems,
                                  quantize_pcm16, read, read_blocks, resample)
from mssjax.audio.writing import (BIT_DEPTHS, FORMATS, SUBTYPES, BlockWriter, ClippingWarning, EncoderWriter,
                                  OutputFormat, Quantized, quantize, save, save_set)

__all__ = ["AudioInfo", "info", "read", "read_blocks", "load", "load_stems", "resample", "as_stereo", "check_finite",
           "quantize_pcm16", "SOUNDFILE_EXTENSIONS", "save", "save_set", "BlockWriter", "EncoderWriter",
           "OutputFormat", "Quantized", "quantize", "ClippingWarning", "FORMATS", "BIT_DEPTHS", "SUBTYPES"]
