"""Files through a public `Codec`: audio -> .apc, .apc -> audio, audio -> audio, every channel kept by default.

One channel streams end to end (memory of a few blocks, whatever the length), through the engine's file chains.
Several channels are coded independently — bitrate x channels, as DAC's CLI does — one chain per channel over the
same file (each reads its own channel), the .apc holding channel 0's codes, then channel 1's. Decoding them back
into one interleaved audio file needs every channel's samples at once, so multichannel decode and run hold the
decoded audio in memory (float32: 10.6 MB per channel-minute at 44.1 kHz) and write it at the end.

The .apc header records where the codes came from: the model id, the encoder graph's precision and sha256.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.errors import InputError

Progress = Callable[[int], None]


class CodecFiles:
    """The file methods of the public Codec (mixed in; `self._engine` is the runtime engine)."""

    _engine: Any

    def _file_tag(self) -> tuple[str, str]:
        from apucodec.runtime.precision import stage_precision

        return stage_precision(self._engine, "encoder")

    def encode_file(self, input_path: str | Path, output_path: str | Path, n_codebooks: int | None = None,
                    progress: Progress | None = None, mono: bool = False) -> Any:
        """Audio file -> .apc file (every channel, or their average with `mono`); returns the run's RunResult."""
        from apucodec.io.apc_writer import ApcWriter
        from apucodec.io.audio_read import read_blocks
        from apucodec.io.outputs import open_binary_output
        from apucodec.runtime import engine as chains
        from apucodec.runtime.codec_runner import check_distinct
        from apucodec.runtime.lanes import Lanes

        eng = self._engine
        n = eng.n_codebooks(n_codebooks)
        notes: list[str] = []
        info = eng._input(input_path, notes)
        channels = 1 if mono else info.channels
        notes[:] = [note for note in notes if "downmixed" not in note or mono]
        output_path = Path(output_path)
        check_distinct(info.path, output_path)
        precision, sha = self._file_tag()
        result = None
        with open_binary_output(output_path) as fh:
            apc = ApcWriter(fh, sample_rate=eng.sample_rate, input_rate=info.sample_rate, n_codebooks=n,
                            codebook_size=eng.rvq.codebook_size, hop=eng.hop, model_id=eng.model.model_id,
                            channels=channels, precision=precision, graph_sha256=sha)
            for channel in range(channels):
                lanes = Lanes(eng.queue_depth)
                blocks = read_blocks(info, eng.sample_rate, channel=None if channels == 1 else channel)
                result = eng._execute("encode", lanes, chains.sample_source(blocks, lanes), n,
                                      eng._progress_sink(apc.write, lanes, progress,
                                                         lambda codes: codes.shape[1] * eng.hop), notes)
            apc.close(result.samples, info.frames)
        return result

    def check_header(self, header: Any, source: Path, force: bool = False) -> None:
        """Refuse an .apc this model cannot decode; one made by another model unless `force`."""
        try:
            self._engine.check_header(header, source, force)
        except InputError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "ApucodecError":
                raise InputError(str(exc)) from None
            raise

    def decode_file(self, input_path: str | Path, output_path: str | Path, force: bool = False,
                    match_input: bool = False, progress: Progress | None = None) -> Any:
        """.apc file -> audio file with the channels it was encoded with (44.1 kHz, or the original input's rate
        with `match_input`)."""
        from apucodec.io.apc_reader import open_apc

        input_path, output_path = Path(input_path), Path(output_path)
        with open_apc(input_path) as reader:
            if reader.header.channels == 1:
                self.check_header(reader.header, input_path, force)
                return self._engine._decode_reader(reader, input_path, output_path, force, match_input, progress)
            return self._decode_channels(reader, input_path, output_path, force, match_input, progress)

    def _decode_channels(self, reader: Any, input_path: Path, output_path: Path, force: bool, match_input: bool,
                         progress: Progress | None) -> Any:
        from apucodec.runtime import engine as chains
        from apucodec.runtime.codec_runner import check_distinct
        from apucodec.runtime.lanes import Lanes

        eng, header = self._engine, reader.header
        check_distinct(input_path, output_path)
        self.check_header(header, input_path, force)
        chunk = 256
        per_channel = -(-header.frames // chunk)
        stream = reader.chunks(chunk)
        decoded, result = [], None
        for _ in range(header.channels):
            pieces: list[np.ndarray] = []
            lanes = Lanes(eng.queue_depth)
            source = chains.codes_source(islice(stream, per_channel), header.original_length)
            result = eng._execute("decode", lanes, source, header.n_codebooks,
                                  eng._progress_sink(pieces.append, lanes, progress, len), [], source_name="codes")
            decoded.append(np.concatenate(pieces))
        for _ in stream:  # the reader checks the CRC and the file's end after its last chunk
            raise InputError(f"{input_path}: not a valid .apc file (more codes than the header says)")
        out_rate = header.input_rate if match_input else eng.sample_rate
        self._write_channels(output_path, decoded, out_rate, header.input_length if match_input else None)
        return result

    def _write_channels(self, output_path: Path, decoded: list[np.ndarray], out_rate: int,
                        target: int | None) -> None:
        from apucodec.io.audio_write import open_audio_output
        from apucodec.io.resample import StreamResampler

        columns = []
        for audio in decoded:
            resampler = StreamResampler(self._engine.sample_rate, out_rate)
            out = np.concatenate([resampler.process(audio), resampler.flush()])
            if target is not None:
                out = np.pad(out, (0, max(target - out.size, 0)))[:target]
            columns.append(out)
        frames = np.clip(np.stack(columns, axis=1), -1.0, 1.0)
        with open_audio_output(output_path, out_rate, frames.shape[0], channels=frames.shape[1]) as fh:
            fh.write(frames)

    def run_file(self, input_path: str | Path, output_path: str | Path, n_codebooks: int | None = None,
                 match_input: bool = False, progress: Progress | None = None, mono: bool = False) -> Any:
        """Encode and decode a file; every channel kept (or their average with `mono`)."""
        from apucodec.io.audio_read import probe, read_blocks
        from apucodec.runtime.codec_runner import check_distinct

        eng = self._engine
        info = probe(input_path)
        if mono or info.channels == 1:
            return eng.run_file(input_path, output_path, n_codebooks, match_input, progress)
        output_path = Path(output_path)
        check_distinct(info.path, output_path)
        n = eng.n_codebooks(n_codebooks)
        decoded, result = [], None
        for channel in range(info.channels):
            samples = np.concatenate(list(read_blocks(info, eng.sample_rate, channel=channel)))
            audio, result = eng.run_array(samples, n, progress)
            decoded.append(audio)
        self._write_channels(output_path, decoded, info.sample_rate if match_input else eng.sample_rate,
                             info.frames if match_input else None)
        return result

    def run_array(self, audio: np.ndarray, n_codebooks: int | None = None, progress: Progress | None = None,
                  overlap: bool = True) -> Any:
        """Codec-rate mono float32 samples -> (reconstruction, RunResult): the engine's chain, timed (bench)."""
        return self._engine.run_array(audio, n_codebooks, progress, overlap)
