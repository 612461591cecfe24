"""Noise suppression cost: RNNoise speakers per core (issue 15 target: ≥ 20).

    python -m bench.voip_denoise [--seconds S] [--repeat N] [--speakers K] [--threads T]

20 ms Opus packets (the speech fixture of tests/voip mixed with white noise at 5 dB SNR,
looped to S seconds, so RNNoise never sees digital silence, which it skips) go through
``SpeakerDenoiser.process``. The real-time factor is CPU seconds per second of audio for
decode + RNNoise + encode; speakers per core is its inverse. It is measured for one
speaker, and for K speakers (default 20, the target) taking turns packet by packet on one
thread, as a server's would: RNNoise streams its weights (~2.5 MB of int8 as
SpeakerDenoiser runs it, ~10 MB of float in pyrnnoise's default) through the cache every
10 ms frame, so what else runs on the machine and shares its caches moves the figure. Each figure is the best of N runs (the best run is the one least disturbed);
the median is printed beside it. Then each stage alone, and the encoder at other
complexities. With ``--threads T`` (default 2), T speakers at once on T threads: CPU
seconds over wall seconds shows whether they run in parallel (libopus and RNNoise
release the GIL). Numbers only, no assertions.

CPU time on a shared machine drifts with its load; for shares that do not, count
instructions with callgrind over the pipeline alone and read the inclusive counts of
``compute_rnn`` (RNNoise), ``avcodec_send_frame`` (encode: about half of it is the making
of the input packets, the same work) and ``avcodec_send_packet`` (decode):

    valgrind --tool=callgrind python -m bench.voip_denoise --seconds 6 --repeat 1 \
        --pipeline-only
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import threading
import time
from importlib import metadata

import av
import numpy as np
from pyrnnoise import rnnoise

from tests.voip.speech_sample import clean_speech, encode, mix
from voip.denoise import SpeakerDenoiser
from voip.opus_codec import OpusPacketDecoder, OpusPacketEncoder
from voip.rnnoise_model import create_state

FRAME = 960  # 20 ms, what WebRTC sends


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, load {load}; "
            f"Python {platform.python_version()}, PyAV {av.__version__}, "
            f"pyrnnoise {metadata.version('pyrnnoise')}")


def best_and_median(run, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times), statistics.median(times)


def report(label: str, audio_s: float, cpu: tuple[float, float]) -> None:
    """One table row; ``audio_s`` is the audio processed in one run, all speakers'."""
    best, median = cpu
    print(f"| {label} | {1000 * best / audio_s:.1f} | {1000 * median / audio_s:.1f} | "
          f"{audio_s / best:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pipeline-only", action="store_true")
    args = parser.parse_args()

    speech = mix(clean_speech(), "white", 5)
    reps = int(np.ceil(args.seconds * 48000 / len(speech)))
    pcm = np.tile(speech, reps)[: int(args.seconds * 48000) // FRAME * FRAME]
    packets = encode(pcm, frame=FRAME, bitrate=32000)
    audio_s = len(packets) * FRAME / 48000
    frames = pcm.reshape(-1, FRAME).astype(np.int16)

    print(machine())
    print(f"{audio_s:.0f} s of one speaker's 20 ms packets, best of {args.repeat} runs\n")
    print("| stage | CPU ms per audio s (best) | (median) | speakers per core (best) |")
    print("|---|---|---|---|")

    def pipeline(complexity: int = 5, speakers: int = 1):
        def run():
            denoisers = [SpeakerDenoiser(complexity=complexity) for _ in range(speakers)]
            for packet in packets:
                for denoiser in denoisers:
                    denoiser.process(packet)
        return run

    report("decode + RNNoise + encode (SpeakerDenoiser, complexity 5)", audio_s,
           best_and_median(pipeline(), args.repeat))
    if args.pipeline_only:
        return
    if args.speakers > 1:
        report(f"the same, {args.speakers} speakers in turn on one thread",
               args.speakers * audio_s,
               best_and_median(pipeline(speakers=args.speakers), max(1, args.repeat // 2)))

    def decode_only():
        decoder = OpusPacketDecoder(1)
        for packet in packets:
            decoder.decode(packet)

    def rnnoise_only(create):
        def run():
            state = create()
            audio = frames.astype(np.float32).reshape(-1)
            pointer = ctypes.POINTER(ctypes.c_float)
            for start in range(0, len(audio), rnnoise.FRAME_SIZE):
                frame = ctypes.cast(audio.ctypes.data + 4 * start, pointer)
                rnnoise.lib.rnnoise_process_frame(state, frame, frame)
            rnnoise.destroy(state)
        return run

    def encode_only(complexity: int):
        def run():
            encoder = OpusPacketEncoder(1, FRAME, 32000, complexity)
            for frame in frames:
                encoder.encode(frame[None])
        return run

    report("Opus decode alone", audio_s, best_and_median(decode_only, args.repeat))
    report("RNNoise alone, int8 weights (as SpeakerDenoiser runs it)", audio_s,
           best_and_median(rnnoise_only(create_state), args.repeat))
    report("RNNoise alone, float weights (pyrnnoise's default)", audio_s,
           best_and_median(rnnoise_only(rnnoise.create), args.repeat))
    for complexity in (10, 5, 1):
        report(f"Opus encode alone, complexity {complexity}", audio_s,
               best_and_median(encode_only(complexity), args.repeat))
    report("decode + RNNoise + encode, complexity 10", audio_s,
           best_and_median(pipeline(10), args.repeat))

    if args.threads > 1:
        workers = [threading.Thread(target=pipeline()) for _ in range(args.threads)]
        wall, cpu = time.perf_counter(), time.process_time()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"\n{args.threads} speakers on {args.threads} threads: {cpu:.2f} CPU s in "
              f"{wall:.2f} wall s = {cpu / wall:.2f} cores busy "
              f"({args.threads * audio_s / wall:.1f} speakers in real time on this "
              f"shared machine)")


if __name__ == "__main__":
    main()
