"""Watermark payload: packing, CRC-16 and a rate-1/3 convolutional code with soft Viterbi decoding.

The payload is 48 bits, a 16-bit model id and a 32-bit generation id, followed by a CRC-16
(CCITT, polynomial 0x1021, initial value 0xFFFF): 64 bits in all. They are encoded with the
standard K = 7 rate-1/3 convolutional code (generators 133, 171, 165 octal, as in LTE) and six zero
tail bits, so :data:`CODED_BITS` = 3 x 70 = 210 channel bits. The decoder takes one soft value per
channel bit (positive means 1; its scale does not matter) and returns the maximum-likelihood 64-bit
word; the CRC then says whether that word is a genuine payload (a random word passes with
probability 2^-16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vasa.errors import VasaError

MODEL_BITS = 16
GENERATION_BITS = 32
DATA_BITS = MODEL_BITS + GENERATION_BITS
CRC_BITS = 16
WORD_BITS = DATA_BITS + CRC_BITS          # 64
CONSTRAINT = 7
TAIL = CONSTRAINT - 1
GENERATORS = (0o133, 0o171, 0o165)
RATE_INV = len(GENERATORS)
CODED_BITS = RATE_INV * (WORD_BITS + TAIL)  # 210
_STATES = 1 << TAIL


@dataclass(frozen=True)
class Payload:
    """What every generated video carries: which model made it and which generation call it was."""

    model_id: int
    generation_id: int

    def __post_init__(self) -> None:
        if not 0 <= int(self.model_id) < 1 << MODEL_BITS:
            raise VasaError(f"watermark model id must be in 0..{(1 << MODEL_BITS) - 1}, got {self.model_id}")
        if not 0 <= int(self.generation_id) < 1 << GENERATION_BITS:
            raise VasaError(f"watermark generation id must be in 0..{(1 << GENERATION_BITS) - 1}, "
                            f"got {self.generation_id}")

    def as_dict(self) -> dict[str, int]:
        return {"model_id": int(self.model_id), "generation_id": int(self.generation_id)}


def crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT-FALSE of a bit sequence (MSB first)."""
    crc = 0xFFFF
    for b in np.asarray(bits, np.uint8):
        top = ((crc >> 15) & 1) ^ int(b)
        crc = (crc << 1) & 0xFFFF
        if top:
            crc ^= 0x1021
    return crc


def _int_bits(value: int, n: int) -> np.ndarray:
    return np.array([(int(value) >> (n - 1 - i)) & 1 for i in range(n)], np.uint8)


def _bits_int(bits: np.ndarray) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


def pack(payload: Payload) -> np.ndarray:
    """Payload -> 64-bit word (data bits then CRC), uint8 0/1."""
    data = np.concatenate([_int_bits(payload.model_id, MODEL_BITS),
                           _int_bits(payload.generation_id, GENERATION_BITS)])
    return np.concatenate([data, _int_bits(crc16(data), CRC_BITS)])


def unpack(word: np.ndarray) -> tuple[Payload, bool]:
    """64-bit word -> (payload, CRC ok)."""
    word = np.asarray(word, np.uint8)
    if word.shape != (WORD_BITS,):
        raise VasaError(f"a watermark word has {WORD_BITS} bits, got {word.shape}")
    data, crc = word[:DATA_BITS], word[DATA_BITS:]
    payload = Payload(_bits_int(data[:MODEL_BITS]), _bits_int(data[MODEL_BITS:]))
    return payload, crc16(data) == _bits_int(crc)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for s in (4, 2, 1):
        x ^= x >> s
    return x & 1


# Branch outputs for every 7-bit register value (newest input bit in the LSB): (128, 3) in {0, 1}.
_REGS = np.arange(1 << CONSTRAINT, dtype=np.int64)
_OUT = np.stack([_parity(_REGS & g) for g in GENERATORS], axis=1).astype(np.int8)
_OUT_PM = (2 * _OUT - 1).astype(np.float64)  # +-1 for the correlation metric


def conv_encode(word: np.ndarray) -> np.ndarray:
    """64 (or any number of) bits -> 3 x (n + 6) coded bits, zero-terminated."""
    bits = np.concatenate([np.asarray(word, np.uint8), np.zeros(TAIL, np.uint8)])
    state, out = 0, []
    for b in bits:
        reg = (state << 1) | int(b)
        out.extend(_OUT[reg])
        state = reg & (_STATES - 1)
    return np.array(out, np.uint8)


def encode(payload: Payload) -> np.ndarray:
    """Payload -> the 210 channel bits that are embedded."""
    return conv_encode(pack(payload))


def viterbi_decode(soft: np.ndarray, n_bits: int = WORD_BITS) -> np.ndarray:
    """Maximum-likelihood (correlation metric) decoding of soft channel values; returns ``n_bits`` bits."""
    soft = np.asarray(soft, np.float64)
    steps = n_bits + TAIL
    if soft.shape != (RATE_INV * steps,):
        raise VasaError(f"viterbi_decode needs {RATE_INV * steps} soft values, got {soft.shape}")
    y = soft.reshape(steps, RATE_INV)
    ns = np.arange(_STATES)
    u = ns & 1
    prev = np.stack([ns >> 1, (ns >> 1) | (_STATES >> 1)])          # (2, 64) predecessors
    regs = (prev << 1) | u                                             # (2, 64) 7-bit registers
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, _STATES), np.int8)
    for t in range(steps):
        cand = metric[prev] + _OUT_PM[regs] @ y[t]                    # (2, 64)
        best = np.argmax(cand, axis=0)
        choice[t] = best
        metric = cand[best, ns]
        if t >= n_bits:                                                # tail: only input 0 allowed
            metric = np.where(u == 0, metric, -np.inf)
    state, bits = 0, np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = state & 1
        state = int(prev[choice[t, state], state])
    return bits[:n_bits]


def decode(soft: np.ndarray) -> tuple[Payload, bool, float]:
    """Soft channel values -> (payload, CRC ok, agreement).

    ``agreement`` is the normalised correlation between the soft values and the re-encoded decision,
    in [-1, 1]: about 0.55 for pure noise (the decoder picks the best of 2^64 codewords), 0.7 or more
    for a read the code corrects reliably, close to 1 for a clean one. It is a diagnostic; the CRC
    and the sync statistic make the decision.
    """
    word = viterbi_decode(soft)
    payload, ok = unpack(word)
    signs = 2.0 * conv_encode(word).astype(np.float64) - 1.0
    s = np.asarray(soft, np.float64)
    norm = float(np.sqrt(np.sum(s * s)) * np.sqrt(len(s)))
    return payload, ok, float(s @ signs / norm) if norm > 0 else 0.0
