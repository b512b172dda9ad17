"""The ``cleanvision`` command: denoise, degrade, eval, push, export.

    cleanvision denoise photo.jpg scans/ -o restored/
    cleanvision degrade clean/ -o noisy/ --noise mixed --seed 0
    cleanvision eval --help
    cleanvision push runs/my-model --repo-id me/cleanvision-dncnn
    cleanvision export --onnx dncnn.onnx

Under ``accelerate launch -m cleanvision.cli denoise ...`` the files are split across the
processes (and GPUs), each output written by exactly one process.

``denoise`` and ``degrade`` record the settings of each output in ``OUTDIR/.cleanvision.json``
(:mod:`cleanvision.provenance`): a re-run skips what was made the same way, lists what was made
otherwise, and never takes those outputs back as inputs. Library errors speak Python
(``overwrite=True``); :func:`say` puts them in the command line's words (``--overwrite``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .errors import CleanVisionError, OutputExistsError
from .options import (AUTO_RULE, DAMAGE, DEFAULT_OPSET, ENGINES, MAX_OPSET,
                      MAX_PIXELS, MIN_OPSET, NOISE_LEVEL_RANGE, TILE_RULE)

# Only light modules above: the parser, and so every --help, is built without numpy, OpenCV or
# torch. Each command imports what it works with when it runs.
if TYPE_CHECKING:
    from .provenance import OutputRecord

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
#: What ``cleanvision degrade`` adds to each output's name.
NOISY_SUFFIX = "_noisy"


def say(e: CleanVisionError) -> str:
    """A library error in the command line's words: the library speaks of ``overwrite=True``,
    a command-line user types ``--overwrite``."""
    if isinstance(e, OutputExistsError):
        return f"{e.path}: already exists (--overwrite replaces it)"
    return str(e)


def collect_inputs(inputs: Sequence[str], recursive: bool,
                   earlier_output: Callable[[Path], bool] = lambda f: False
                   ) -> tuple[list[tuple[Path, Path]], list[str], int, list[Path]]:
    """``(file, path relative to its input root)`` pairs, error lines for unusable inputs, how
    many files found in folders were left out as ``earlier_output`` (files named one by one
    are always taken), and the files in folders that are not images (hidden ones aside)."""
    from .image_io import IMAGE_SUFFIXES, scan_folder

    items: list[tuple[Path, Path]] = []
    errors: list[str] = []
    left_out, others = 0, []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found, not_images = scan_folder(p, recursive)
            taken = [f for f in found if not earlier_output(f)]
            left_out += len(found) - len(taken)
            if not taken:
                errors.append(f"{p}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})"
                              + (f" other than {len(found)} outputs of earlier runs" if found else "")
                              + (f"; it holds {describe_files(not_images)}" if not_images else ""))
            else:
                others += not_images
            items += [(f, f.relative_to(p)) for f in taken]
        elif p.exists():
            items.append((p, Path(p.name)))
        else:
            errors.append(f"{p}: no such file or folder")
    return items, errors, left_out, others


def describe_files(files: Sequence[Path]) -> str:
    """What kinds of file these are, in a line, the commonest first: ``2 .cr2 (camera RAW:
    develop into TIFF or PNG first), 1 .txt``."""
    from collections import Counter

    from .image_io import RAW_SUFFIXES

    counts = Counter(f.suffix.lower() or "(no suffix)" for f in files)
    raw = " (camera RAW: develop into TIFF or PNG first)"
    return ", ".join(f"{n} {kind}" + (raw if kind in RAW_SUFFIXES else "") for kind, n in counts.most_common())


def earlier_outputs(record: OutputRecord, suffix: str) -> Callable[[Path], bool]:
    """Which files are outputs of earlier runs into the output folder, never to be read back as
    inputs: those its record names, and (when outputs get a suffix) files in it whose names end
    in that suffix, e.g. ``x_denoised.png``, should the record be gone."""
    from .image_io import WRITE_SUFFIXES

    recorded, outdir = record.outputs(), record.outdir.resolve()

    def is_output(f: Path) -> bool:
        r = f.resolve()
        return r in recorded or bool(suffix) and outdir in r.parents and r.stem.endswith(suffix) \
            and r.suffix.lower() in WRITE_SUFFIXES

    return is_output


#: ``check(src, dest)``: raises unless ``dest`` is to be written (see :func:`_existing`).
Check = Callable[[Path, Path], None]


class Skipped(Exception):
    """An output already made with the settings asked for (no ``--overwrite``): counted, not a failure."""


class Kept(Exception):
    """An output made with other settings, or with none recorded (no ``--overwrite``): kept, and
    listed with how it differs, so a changed setting never silently does nothing."""


def _output_path(outdir: Path, rel: Path, suffix: str, ext: str) -> Path:
    return outdir / rel.parent / f"{rel.stem}{suffix}{ext}"


def _plan(args: argparse.Namespace, suffix: str, ext: str, record: OutputRecord):
    items, errors, left_out, others = collect_inputs(args.inputs, args.recursive, earlier_outputs(record, suffix))
    if left_out:
        print(f"cleanvision {args.command}: {left_out} file(s) in {record.outdir} that earlier runs wrote "
              "are not taken as inputs", file=sys.stderr)
    if others:
        print(f"cleanvision {args.command}: {len(others)} file(s) in the input folders are not images it "
              f"reads, left out: {describe_files(others)}", file=sys.stderr)
    outdir = Path(args.output)
    inputs = {f.resolve() for f, _ in items}
    jobs, seen = [], {}
    for f, rel in items:
        dest = _output_path(outdir, rel, suffix, ext)
        if dest in seen:
            errors.append(f"{f}: output {dest} would also be written for {seen[dest]}; rename one of them")
            continue
        seen[dest] = f
        if dest.resolve() in inputs and not args.overwrite:
            errors.append(f"{f}: output {dest} is one of the inputs (pass --overwrite to replace it)")
            continue
        jobs.append((f, dest))
    return jobs, errors


def _split_for_processes(jobs: list):
    """Under ``accelerate launch`` / torchrun, give each process its share of the files."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return jobs, None
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    with state.split_between_processes(jobs) as mine:
        return list(mine), state


def _run_jobs(jobs, errors, work, desc: str, outdir: Path, state=None) -> int:
    """Apply ``work(src, dest)`` to each job with a progress bar; print a summary; exit code.

    ``work`` raises :class:`Skipped` for an output already made this way (counted, exit code
    unchanged) and :class:`Kept` for one made otherwise (listed, one line each, exit code 1).
    """
    import warnings

    from tqdm.auto import tqdm

    from .errors import NotKept

    done, skipped, kept, notes, shown = 0, [], [], [], {}
    main = state is None or state.is_main_process
    try:
        for src, dest in tqdm(jobs, desc=desc, unit="img", disable=not jobs or not main and state is not None,
                              file=sys.stderr):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", NotKept)
                    work(src, dest)
                for w in caught:  # listed under the summary, not a warning line through the progress bar
                    if issubclass(w.category, NotKept):
                        notes.append(str(w.message))
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=shown)
                done += 1
            except Skipped as e:
                skipped.append(str(e))
            except Kept as e:
                kept.append(str(e))
            except CleanVisionError as e:
                errors.append(say(e))
            except (ValueError, OSError) as e:
                errors.append(f"{src}: {e}")
    except KeyboardInterrupt:
        print(f"interrupted: {done} written, {len(jobs) - done - len(skipped) - len(kept)} not processed "
              "(no partial files left)", file=sys.stderr)
        return EXIT_INTERRUPTED
    rank = "" if state is None else f"[process {state.process_index}] "
    summary = f"{rank}{done} written to {outdir}"
    if skipped:
        summary += f", {len(skipped)} skipped (already made with these settings)"
    if kept:
        summary += f", {len(kept)} kept (made with other settings: listed below)"
    print(summary + (f", {len(errors)} failed:" if errors else ""), file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)
    if notes:
        print(f"{rank}{len(notes)} written without part of the input:", file=sys.stderr)
        for line in notes:
            print(f"  {line}", file=sys.stderr)
    if kept:
        print(f"{rank}{len(kept)} output(s) kept as they were, made with other settings than these; "
              "nothing was written for them (rerun with --overwrite to replace them):", file=sys.stderr)
        for line in kept:
            print(f"  {line}", file=sys.stderr)
    return EXIT_FAILED if errors or kept else 0


def _final_dest(src: Path, dest: Path, img, check: Check) -> Path:
    """Where ``img`` (read from ``src``) is written: ``dest``, as TIFF if ``img`` is float,
    after ``check`` of that file."""
    from .image_io import output_suffix

    dest = dest.with_suffix(output_suffix(img, dest.suffix))
    check(src, dest)
    return dest


def _existing(record: OutputRecord, settings: dict, overwrite: bool, model_name: str | None = None) -> Check:
    """The check before each output is made. Nothing there, or ``--overwrite``: go ahead. The
    input itself: refused. Made with these settings: :class:`Skipped`. Made otherwise, or with
    no record: :class:`Kept`, saying how it differs."""
    from .provenance import differences

    def check(src: Path, dest: Path) -> None:
        if overwrite or not dest.exists():
            return
        if dest.resolve() == src.resolve():
            raise CleanVisionError(f"{src}: output {dest} is one of the inputs (pass --overwrite to replace it)")
        diff = differences(record.get(dest), settings, model_name)
        if not diff:
            raise Skipped(str(dest))
        raise Kept(f"{dest}: {', '.join(diff)}")

    return check


def _noise_level(text: str) -> float | None:
    """``auto`` (None: estimated from each photo) or σ on the 0-255 scale, in NOISE_LEVEL_RANGE."""
    if text.strip().lower() == "auto":
        return None
    lo, hi = NOISE_LEVEL_RANGE
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number from {lo:g} to {hi:g}, got {text!r}") from None
    if not lo <= v <= hi:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be auto or from {lo:g} to {hi:g}, got {text}")
    return v


def _strength(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= v <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return v


def cmd_denoise(args: argparse.Namespace) -> int:
    from .image_io import read_photo, write_image
    from .inference import MODEL_ENV, Denoiser
    from .provenance import OutputRecord, model_identity

    if args.engine in ("onnxruntime", "int8") and args.device and args.device != "cpu":  # before any work
        raise CleanVisionError(f"--engine {args.engine} runs on the CPU; leave out --device {args.device}")
    record = OutputRecord(args.output)
    jobs, errors = _plan(args, args.suffix, "." + args.format, record)
    jobs, state = _split_for_processes(jobs)
    if state is not None and state.process_index != 0:
        errors = []  # input errors are reported once, by the main process
    device = args.device or (str(state.device) if state is not None else None)
    den = Denoiser.from_pretrained(args.model, revision=args.revision, device=device,
                                   tile_size=args.tile_size, engine=args.engine)
    if state is None or state.process_index == 0:
        print(f"cleanvision denoise: model {args.model or 'shipped'}, {den.engine} engine on {den.device.type}",
              file=sys.stderr)
    model_name = args.model or os.environ.get(MODEL_ENV) or "shipped"
    if args.noise_level is not None and not den.takes_noise_level:
        raise CleanVisionError(f"--noise-level {args.noise_level:g}: model {args.model or 'shipped'} is blind "
                               "(it finds the noise level itself); leave --noise-level out")
    settings = {"model": model_identity(args.model, args.revision), "engine": den.engine,
                "strength": args.strength}
    if den.takes_noise_level:
        settings["noise_level"] = "auto" if args.noise_level is None else args.noise_level
    check = _existing(record, settings, args.overwrite, model_name)

    def work(src: Path, dest: Path) -> None:
        check(src, dest)  # before the (slow) read and restore
        img, metadata = read_photo(src, args.max_pixels)
        dest = _final_dest(src, dest, img, check)
        write_image(dest, den(img, strength=args.strength, noise_level=args.noise_level), overwrite=args.overwrite,
                    metadata=metadata)
        record.add(dest, "denoise", src, settings, model_name=model_name)

    try:
        return _run_jobs(jobs, errors, work, "denoise", Path(args.output), state)
    finally:  # also after Ctrl-C: what was written is recorded
        record.save()


def cmd_degrade(args: argparse.Namespace) -> int:
    import json

    from .image_io import join_alpha, read_photo, split_alpha, swap_rb, write_image
    from .noise import apply_noise, bench_rng, parse_noise_spec, random_mixture
    from .provenance import OutputRecord

    try:
        spec = parse_noise_spec(args.noise)
    except ValueError as e:
        print(f"cleanvision degrade: {e}", file=sys.stderr)
        return 2
    record = OutputRecord(args.output)
    jobs, errors = _plan(args, NOISY_SUFFIX, ".png", record)
    settings = {"noise": args.noise.strip(), "seed": args.seed}
    check = _existing(record, settings, args.overwrite)
    manifest: dict[str, dict] = {}

    def work(src: Path, dest: Path) -> None:
        check(src, dest)
        img, metadata = read_photo(src, args.max_pixels)
        colour, alpha = split_alpha(img)
        # per file from (seed, noise, file name): independent of file order, and for
        # ``--noise mixed`` the same generator as the frozen benchmark's make_bench.py
        rng = bench_rng(args.seed, args.noise.strip(), src.name)
        bgr = swap_rb(colour)  # the benchmark draws in OpenCV's order
        noisy, params = random_mixture(bgr, rng) if spec is None else apply_noise(bgr, spec, rng)
        noisy = join_alpha(swap_rb(noisy), alpha)
        dest = _final_dest(src, dest, noisy, check)
        write_image(dest, noisy, overwrite=args.overwrite, metadata=metadata)
        record.add(dest, "degrade", src, settings)
        manifest[str(dest.relative_to(args.output))] = {"source": str(src), "seed": args.seed,
                                                        "noise": params}

    try:
        code = _run_jobs(jobs, errors, work, "degrade", Path(args.output))
    finally:
        record.save()
    if manifest:
        path = Path(args.output) / "degradations.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps({**old, **manifest}, indent=1, default=list))
        os.replace(tmp, path)
    return code


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import prepare_upload, push_to_hub

    card = args.card if args.card else (Path("model_card.md") if Path("model_card.md").is_file() else None)
    if args.dry_run:
        for k, v in prepare_upload(args.model_dir, card).items():
            print(f"{v} -> {args.repo_id}/{k}")
        return 0
    print(push_to_hub(args.model_dir, args.repo_id, card, token=args.token, private=args.private))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx
    from .inference import MODEL_ENV, load_model

    model = load_model(args.model, revision=args.revision)
    meta = export_onnx(model, args.onnx, opset=args.opset, overwrite=args.overwrite,
                       source=args.model or os.environ.get(MODEL_ENV) or "shipped")
    print(f"wrote {args.onnx} (opset {meta['opset']}); its metadata_props:")
    for key, value in meta.items():
        print(f"  {key}: {value}")
    return 0


def _rerun_help(settings: str, example: str, named: str, suffix: str) -> str:
    """What --help says about outputs already in OUTDIR, and about OUTDIR inside an input folder."""
    return (f"The settings each output was made with ({settings}) are recorded in OUTDIR/.cleanvision.json. "
            "Run again, an output already made with the same settings is skipped; one made with other "
            f"settings (or with none recorded) is kept, listed with how it differs (e.g. '{example}'), and the "
            "exit code is 1: --overwrite replaces it. Files in OUTDIR that earlier runs wrote (recorded "
            f"there, or {named}) are never taken as inputs from a folder, so OUTDIR may be an input folder "
            f"or inside one: no <name>{suffix}{suffix}.")


def _add_io(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (otherwise those made with the same settings are skipped, "
                   "those made otherwise are kept and listed)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"refuse images with more pixels (default {MAX_PIXELS:,})")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, from light modules only (see the imports at the top)."""
    from . import __version__
    from .bench.command import add_eval_parser
    from .speed import add_arguments as add_bench_arguments
    from .speed import main_from_args as bench_main

    ap = argparse.ArgumentParser(prog="cleanvision", description="Blind restoration of photos (the damage "
                                 f"need not be named): {DAMAGE}.")
    ap.add_argument("--version", action="version", version=f"cleanvision {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    d = sub.add_parser("denoise", help="restore images; writes lossless PNG/TIFF with the input's bit depth",
                       description=f"Restore images damaged by {DAMAGE}. Reads PNG, JPEG, HEIC/HEIF, AVIF, TIFF, "
                       "WebP, BMP and GIF; other files in the input folders (camera RAW: develop them first) are "
                       "listed, not restored. Outputs are OUTDIR/<name><suffix>.png "
                       "(or .tif; float images always .tif), same bit depth and channels as the input; of an "
                       "animated GIF or WebP or a multi-page TIFF only the first frame, listed at the end; a PNG keeps the "
                       "input's colour profile and EXIF record. "
                       + _rerun_help("model, engine, strength", "strength 1 -> 0.5",
                                     "with --suffix, named <name><suffix>", "<suffix>")
                       + " An output that would replace an input is refused without --overwrite. Exit code 1 if "
                       "any input failed or any output was kept, else 0.")
    _add_io(d)
    d.add_argument("--model", default=None, help="model folder or Hub repo id (default: the shipped model, "
                   "or $CLEANVISION_MODEL)")
    d.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of --model")
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    d.add_argument("--tile-size", type=int, default=None,
                   help=f"largest tile side in px (bounds memory; default: {TILE_RULE})")
    d.add_argument("--engine", default="auto", choices=ENGINES,
                   help=f"auto ({AUTO_RULE}), reference "
                   "(plain fp32 PyTorch), fp32 (folded BatchNorm, channels-last), bf16, onnxruntime "
                   "(ONNX Runtime on the CPU; needs the [onnx] extra), or int8 (the model folder's int8 graph, "
                   "model_int8.onnx, in ONNX Runtime on the CPU; refused when missing or made from other "
                   "weights) (default: auto)")
    d.add_argument("--strength", type=_strength, default=1.0, metavar="0..1",
                   help="fraction of the predicted damage removed: 1 the full restoration, 0 an exact "
                   "copy of the input, between them a blend (default: 1)")
    d.add_argument("--noise-level", type=_noise_level, default=None, metavar="auto|σ",
                   help="for models that take a noise level: how noisy the photos are, σ on the 0-255 "
                   f"scale ({NOISE_LEVEL_RANGE[0]:g} to {NOISE_LEVEL_RANGE[1]:g}); lower keeps more texture, higher "
                   "removes more (default: auto, estimated from each photo). A blind model (one trained "
                   "without a noise-level input) takes none")
    d.add_argument("--suffix", default="", help="added to each output name, e.g. _restored")
    d.add_argument("--format", default="png", choices=("png", "tif"),
                   help="png, or tif (deflate-compressed; float images are always tif) (default: png)")
    d.set_defaults(func=cmd_denoise)

    g = sub.add_parser("degrade", help=f"make noisy copies of clean images (<name>{NOISY_SUFFIX}.png)",
                       description=f"Make noisy copies: OUTDIR/<name>{NOISY_SUFFIX}.png (float images: .tif) "
                       "plus degradations.json with the parameters drawn for each file. Reproducible from "
                       "--seed and the file name. "
                       + _rerun_help("--noise, --seed", "seed 0 -> 1", f"named <name>{NOISY_SUFFIX}.png or .tif",
                                     NOISY_SUFFIX))
    _add_io(g)
    g.add_argument("--noise", default="mixed", help="'mixed' (1-3 random types, SPEC.md ranges) or e.g. "
                   "gaussian=25,salt_pepper=0.05,speckle=0.04,scribble=4,thickness=3,jpeg=50 (jpeg: saved as JPEG "
                   "at that quality, last)")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_degrade)

    u = sub.add_parser("push", help="upload a model folder and model card to the Hugging Face Hub")
    u.add_argument("model_dir", help="a save_pretrained folder (config.json + model.safetensors)")
    u.add_argument("--repo-id", required=True)
    u.add_argument("--card", default=None, help="model card to upload as README.md (default: ./model_card.md)")
    u.add_argument("--token", default=None)
    u.add_argument("--private", action="store_true")
    u.add_argument("--dry-run", action="store_true", help="check the files and card, list what would be uploaded")
    u.set_defaults(func=cmd_push)

    x = sub.add_parser("export", help="write the model as ONNX (BatchNorm folded; dynamic batch, height, width)",
                       description="Write the model as an ONNX file: the folded network the fast engines run, "
                       "input 'image' N×C×H×W float32 in [0, 1], output 'restored' (not clipped). Batch, H and W "
                       "are dynamic, any size from 1×1 up: the graph pads to a multiple of the pixel-unshuffle "
                       "factor by edge replication and crops back, as the PyTorch model does. "
                       "The opset, cleanvision version, model config, unshuffle factor and receptive radius are "
                       "stored in the file's metadata and printed. Needs the [onnx] extra.")
    x.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the file to write (atomically)")
    x.add_argument("--model", default=None, help="model folder or Hub repo id (default: the shipped model, "
                   "or $CLEANVISION_MODEL)")
    x.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of --model")
    x.add_argument("--opset", type=int, default=DEFAULT_OPSET, choices=range(MIN_OPSET, MAX_OPSET + 1),
                   metavar=f"{MIN_OPSET}..{MAX_OPSET}", help=f"ONNX opset (default: {DEFAULT_OPSET})")
    x.add_argument("--overwrite", action="store_true", help="replace OUT.onnx if it exists (otherwise refused)")
    x.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="speed benchmark: engines vs the reference path and OpenCV NLM",
                       description="Time the reference path, the fast engines and OpenCV non-local means on "
                       "the same image at several sizes; write a JSON and a markdown table.")
    add_bench_arguments(b)
    b.set_defaults(func=bench_main)

    add_eval_parser(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CleanVisionError as e:
        print(f"cleanvision {args.command}: {say(e)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
