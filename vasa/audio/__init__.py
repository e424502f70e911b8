"""Audio features ``A`` for the motion model: log-mel front-end, a streamable content encoder ``A_enc``.

Public API:

* :class:`AudioConfig`, ``AUDIO_SIZES`` / :func:`audio_config`, :class:`AudioTrainConfig`
* :func:`log_mel_frames` (16 kHz audio -> 25 fps stacked log-mel), :func:`num_frames`
* :class:`AudioEncoder` (bounded look-ahead ``L``), :class:`AudioEncoderStream` / :class:`LogMelStream`
* :class:`AudioEncoderTask`, :func:`evaluate_encoder`, :func:`build_phoneme_vocab`, :func:`load_audio_encoder`
"""

from vasa.audio.config import AUDIO_SIZES, AudioConfig, AudioTrainConfig, audio_config
from vasa.audio.encoder import AudioEncoder
from vasa.audio.features import log_mel_frames, num_frames
from vasa.audio.stream import AudioEncoderStream, LogMelStream
from vasa.audio.train import AudioEncoderTask, build_phoneme_vocab, evaluate_encoder, load_audio_encoder

__all__ = ["AUDIO_SIZES", "AudioConfig", "AudioEncoder", "AudioEncoderStream", "AudioEncoderTask",
           "AudioTrainConfig", "LogMelStream", "audio_config", "build_phoneme_vocab", "evaluate_encoder",
           "load_audio_encoder", "log_mel_frames", "num_frames"]
