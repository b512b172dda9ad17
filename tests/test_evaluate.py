"""The benchmark (cleanvision.bench) and the tables it feeds (scripts/update_tables.py).

Runs the real benchmark twice on crops of the first two CBSD68 images (frozen benchmark built
by ../shared/bench/make_bench.py, paper protocol, the shipped model and every baseline), then
checks determinism, the metrics against scikit-image, and the documents against the JSON.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cleanvision import Denoiser
from cleanvision import bench as evaluate
from cleanvision.cli import main as cli_main
from cleanvision.image_io import read_image

from conftest import BENCH_SCRIPT, CBSD68, ROOT, load_script, require

#: The documents with every set's full tables (README and model card carry the headline table).
DOCS = (ROOT / "docs" / "benchmark.md",)
README, CARD = ROOT / "README.md", ROOT / "model_card.md"
BENCH_DOCS = ROOT / "docs" / "bench"
#: Sets whose tables docs/benchmark.md must show.
REQUIRED_SETS = {"CBSD68", "Kodak24", "PolyU", "CC15", "BSD68", "Set12"}
SET = "tinyset"
CROPS = ((slice(100, 172), slice(150, 238)), (slice(40, 120), slice(200, 264)))  # 72×88 and 80×64


update_tables = load_script(ROOT / "scripts" / "update_tables.py")


def sk_psnr(a, b):
    return peak_signal_noise_ratio(a, b, data_range=255)


def sk_ssim(a, b):
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, data_range=255)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two small real photos, evaluated twice with every method; (clean dir, bench dir, run1, run2)."""
    root = tmp_path_factory.mktemp("bench")
    clean = root / SET
    clean.mkdir()
    for f, win in zip(sorted(require(CBSD68).glob("*.png"))[:2], CROPS):
        cv2.imwrite(str(clean / f.name), cv2.imread(str(f), cv2.IMREAD_COLOR)[win])
    bench = root / "noisy" / SET
    runs = []
    for i in (1, 2):  # the second run leaves out BM3D (3 s per call even on tiny crops)
        out = root / f"run{i}"
        argv = ["--clean", str(clean), "--bench", str(bench), "--make-bench", str(require(BENCH_SCRIPT)),
                "--out", str(out), "--bm3d-limit", "1", "--paper-crop", "48", "--figure-images", "1",
                "--figure-conditions", "gauss25,sp10", "--crop-size", "48", "--no-progress"]
        if i == 2:
            argv += ["--methods", "model,noisy,median3,median5,gblur,nlm"]
        assert cli_main(["eval", *argv]) == 0
        runs.append(json.loads((out / evaluate.JSON_NAME).read_text()))
    return clean, bench, runs[0], runs[1], root


def test_two_runs_give_identical_numbers(tiny):
    _, _, a, b, _ = tiny
    without_bm3d = {c: {k: v for k, v in r.items() if k != "bm3d"} for c, r in a["results"].items()}
    assert without_bm3d == b["results"]
    assert all(r for r in b["results"].values())
    assert a["images"] == b["images"] == sorted(a["images"])
    assert set(a["conditions"]) == set(evaluate.FROZEN_CONDITIONS) | {"paper15", "paper25", "paper50"}
    methods = set(a["methods"])
    # the shipped model takes a noise level: auto mode, and told the true σ where there is one
    guided = "model:shipped:guided"
    assert methods == {"model:shipped", guided, "noisy", "median3", "median5", "gblur", "nlm", "bm3d"}
    for cond, info in a["conditions"].items():
        got = set(a["results"][cond])
        if info["protocol"] == "paper":
            assert got == {"model:shipped", guided, "noisy", "bm3d"}, cond
        elif cond.startswith("gauss"):
            assert got == methods, cond
        else:
            assert got == methods - {"bm3d", guided}, cond
        for key, r in a["results"][cond].items():
            assert r["n"] == len(r["per_image"]) == (1 if key == "bm3d" else 2)
            assert r["psnr"] == pytest.approx(np.mean([v["psnr"] for v in r["per_image"].values()]), abs=1e-12)
    assert a["timing"]["model:shipped"]["s_per_mp"] > 0


def test_per_image_metrics_match_skimage(tiny):
    clean_dir, bench, doc, _, _ = tiny
    manifest = json.loads((bench / "manifest.json").read_text())
    for name in doc["images"]:
        clean = read_image(clean_dir / name)
        for cond in evaluate.FROZEN_CONDITIONS:
            noisy = read_image(bench / manifest["conditions"][cond][name]["file"])
            expect = {"noisy": noisy, "median3": cv2.medianBlur(noisy, 3), "median5": cv2.medianBlur(noisy, 5),
                      "gblur": cv2.GaussianBlur(noisy, (5, 5), 1.2),
                      "nlm": cv2.fastNlMeansDenoisingColored(noisy[..., ::-1].copy(), None, 10, 10, 7, 21)[..., ::-1]}
            for key, out in expect.items():
                got = doc["results"][cond][key]["per_image"][name]
                assert got["psnr"] == pytest.approx(sk_psnr(clean, out), abs=1e-9), (cond, key, name)
                assert got["ssim"] == pytest.approx(sk_ssim(clean, out), abs=1e-9), (cond, key, name)
        # paper protocol, written out independently: seed 0 per image, float noise, clip + round
        crop = evaluate.centre_crop(clean, 48)
        for sigma in (15, 25, 50):
            np.random.seed(0)
            noisy = crop / 255.0 + np.random.normal(0, sigma / 255.0, crop.shape)
            as_uint8 = np.uint8((noisy.clip(0, 1) * 255).round())
            got = doc["results"][f"paper{sigma}"]["noisy"]["per_image"][name]
            assert got["psnr"] == pytest.approx(sk_psnr(crop, as_uint8), abs=1e-9)
            assert got["ssim"] == pytest.approx(sk_ssim(crop, as_uint8), abs=1e-9)


def test_library_metrics_agree_with_the_benchmark_ssim(tiny):
    """The benchmark's SSIM (skimage when installed) equals cleanvision.metrics.ssim_uint8."""
    from cleanvision.metrics import psnr_uint8, ssim_uint8

    clean_dir, bench, doc, _, _ = tiny
    name = doc["images"][0]
    clean = read_image(clean_dir / name)
    noisy = read_image(bench / "mixed" / name)
    assert evaluate.ssim_value(clean, noisy) == pytest.approx(ssim_uint8(clean, noisy), abs=1e-9)
    assert doc["results"]["mixed"]["noisy"]["per_image"][name]["psnr"] == pytest.approx(psnr_uint8(clean, noisy))


def test_outputs_and_a_tampered_benchmark(tiny, tmp_path, capsys):
    clean_dir, bench, doc, _, root = tiny
    out = root / "run1"
    fig = cv2.imread(str(out / evaluate.FIGURE_NAME))
    assert fig is not None and fig.shape[0] > 2 * 48 and fig.shape[1] > 8 * 48  # 2 rows, 8 columns
    md = (out / evaluate.MD_NAME).read_text()
    assert "first 1 image" in md and "CleanVision (shipped)" in md and "quoted" not in md
    info, steps = json.loads((ROOT / "cleanvision/weights/default/training_info.json").read_text()), 0
    while info:  # every stage of the shipped model counts (init_from chain)
        steps, info = steps + info["steps"], info.get("init_from")
    assert f"{steps:,} training steps" in md
    # an altered noisy file is refused (sha256 in the manifest)
    copy = tmp_path / SET
    shutil.copytree(bench, copy)
    f = copy / "sp10" / doc["images"][0]
    img = cv2.imread(str(f))
    img[0, 0] ^= 1
    cv2.imwrite(str(f), img)
    argv = ["--clean", str(clean_dir), "--bench", str(copy), "--out", str(tmp_path / "o"),
            "--methods", "noisy", "--conditions", "sp10", "--paper-sigmas", "", "--no-progress"]
    with pytest.raises(evaluate.BenchError, match="sha256"):  # the library raises ...
        evaluate.main_from_args(evaluate.build_parser().parse_args(argv))
    assert cli_main(["eval", *argv]) == 1  # ... the CLI says it in one line and exits 1
    assert "sha256" in capsys.readouterr().err


def test_cli_eval_has_the_same_options():
    from cleanvision.cli import build_parser

    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "command")
    eval_opts = {o for a in sub.choices["eval"]._actions for o in a.option_strings}
    mod_opts = {o for a in evaluate.build_parser()._actions for o in a.option_strings}
    assert eval_opts == mod_opts and "--bm3d-limit" in mod_opts and "--limit" in mod_opts
    args = ap.parse_args(["eval", "--clean", "x", "--model", "shipped", "--model", "runs/m"])
    assert args.func is evaluate.main_from_args and args.model == ["shipped", "runs/m"]


# --------------------------------------------------------------------------- documents vs JSON

def _title_to_condition(title: str) -> str:
    title = title.strip()
    m = re.fullmatch(r"σ = (\d+)", title)
    if title == "real noise":
        return "real"
    return f"paper{m.group(1)}" if m else title.strip("`")


def check_block_numbers(body: str, doc: dict) -> int:
    """Every PSNR / SSIM cell of the tables in ``body`` equals the JSON's mean (as rounded);
    every result of the JSON appears. Independent of the renderer. Returns cells checked."""
    labels = {m["label"]: k for k, m in doc["methods"].items()}
    quoted = {f"{q['method']} (quoted from paper)": q for q in doc.get("quoted", [])}
    seen, checked = set(), 0
    header = None
    for line in body.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "method":
            header = [_title_to_condition(c) for c in cells[1:]]
            continue
        if header is None or set(cells[0]) <= {"-", " ", ":"}:
            continue
        label, values = cells[0], cells[1:]
        for cond, cell in zip(header, values):
            if cond == "s/MP":
                continue
            assert cond in doc["conditions"], f"column {cond!r} is not in the JSON"
            if label in quoted:
                q = quoted[label]["psnr"].get(cond)
                assert cell == ("—" if q is None else f"{q:.2f}"), (label, cond, cell)
                continue
            assert label in labels, f"row {label!r} is not a method of the JSON"
            r = doc["results"][cond].get(labels[label])
            if r is None:
                assert cell == "—", (label, cond, cell)
                continue
            psnr, ssim = (float(x) for x in cell.split("/"))
            assert psnr == round(r["psnr"], 2) and ssim == round(r["ssim"], 4), \
                f"{label} {cond}: document says {cell}, JSON says {r['psnr']:.4f} / {r['ssim']:.5f}"
            seen.add((cond, labels[label]))
            checked += 1
    expected = {(c, k) for c, res in doc["results"].items() for k in res}
    assert seen == expected, f"results missing from the document: {sorted(expected - seen)}"
    return checked


def check_model_index(text: str, docs: list, model_key: str | None = None) -> int:
    """The card parses with huggingface_hub.ModelCard and its model-index holds the JSON's numbers
    (``docs``: results JSONs, or (JSON, conditions) pairs for the headline's conditions only)."""
    from huggingface_hub import ModelCard

    card = ModelCard(text, ignore_metadata_errors=False)
    results = card.data.eval_results
    assert results, "no eval_results parsed from model-index"
    got = {(r.dataset_type, r.dataset_config, r.metric_type): r.metric_value for r in results}
    want = {}
    for e in update_tables.model_index_entries(docs, model_key):
        want[(e["set"], e["config"], "psnr")] = e["psnr"]
        want[(e["set"], e["config"], "ssim")] = e["ssim"]
    for item in docs:  # and against the raw JSON, not only the helper
        doc, only = item if isinstance(item, tuple) else (item, None)
        key = model_key or evaluate.model_keys(doc)[0]
        for cond, res in doc["results"].items():
            if key in res and (only is None or cond in only):
                info = doc["conditions"][cond]
                cfg = f"paper-sigma{info['sigma']:g}" if info["protocol"] == "paper" else cond
                assert got[(doc["set"], cfg, "psnr")] == pytest.approx(res[key]["psnr"], abs=0.005 + 1e-9)
                assert got[(doc["set"], cfg, "ssim")] == pytest.approx(res[key]["ssim"], abs=0.00005 + 1e-9)
    assert got == want
    return len(got)


def _outside(text: str) -> str:
    """The text outside every marked block (what update_tables must never change)."""
    text = update_tables.BLOCK.sub(lambda m: m.group(1) + m.group(4), text)
    return re.sub(r"# bench:model-index start\n.*?# bench:model-index end", "#mi", text, flags=re.S)


def test_update_tables_round_trip(tiny, tmp_path):
    """On copies of README.md / model_card.md (markers added where missing): regenerate, then the
    numbers match the JSON, text outside markers is unchanged, and an edited number is caught."""
    _, _, doc, _, root = tiny
    bench_dir = tmp_path / "bench"
    docs = []
    for name in ("CBSD68", "Kodak24"):  # the tiny run posing as each set, with the set's quoted rows
        d = dict(doc, set=name, quoted=evaluate.QUOTED[name])
        (bench_dir / name).mkdir(parents=True)
        (bench_dir / name / evaluate.JSON_NAME).write_text(json.dumps(d))
        docs.append(d)
    readme, card = tmp_path / "README.md", tmp_path / "model_card.md"
    readme.write_text(README.read_text())
    text = CARD.read_text()
    if update_tables.YAML_START not in text:
        text = text.replace("\n---\n", f"\n{update_tables.YAML_START}\n{update_tables.YAML_END}\n---\n", 1)
    for name in ("CBSD68", "Kodak24"):
        if f"<!-- bench:{name} start -->" not in text:
            text += f"\n<!-- bench:{name} start -->\n{update_tables.PLACEHOLDER}\n<!-- bench:{name} end -->\n"
    card.write_text(text)
    plain = tmp_path / "NOTES.md"
    plain.write_text("# notes\nno markers here\n")
    before = {p: p.read_text() for p in (readme, card, plain)}
    if update_tables.blocks(before[readme]) == []:
        readme.write_text(before[readme] + "\n<!-- bench:CBSD68 start -->\nx\n<!-- bench:CBSD68 end -->\n")
        before[readme] = readme.read_text()

    argv = [str(readme), str(card), str(plain), "--bench-dir", str(bench_dir)]
    assert update_tables.main(argv) == 0
    assert update_tables.main(argv + ["--check"]) == 0  # idempotent
    assert plain.read_text() == before[plain]
    for p in (readme, card):
        new = p.read_text()
        assert _outside(new) == _outside(before[p]), f"{p.name}: text outside the markers changed"
        found = update_tables.blocks(new)
        assert found
        for m in found:
            if m.group("name") not in ("CBSD68", "Kodak24"):  # no JSON in this bench dir: left as it was
                assert m.group(0) in before[p]
                continue
            d = docs[["CBSD68", "Kodak24"].index(m.group("name"))]
            assert check_block_numbers(m.group("body"), d) > 10
            assert "(quoted from paper)" in m.group("body")
    md = (root / "run1" / evaluate.MD_NAME).read_text().splitlines()
    assert md[1:] == evaluate.render_markdown(doc).splitlines()  # results.md is the same renderer's table
    assert check_model_index(card.read_text(), docs) == 2 * 2 * 10

    # a number edited by hand: the checks and --check catch it
    broken = re.sub(r"\| noisy input \| (\d+)\.(\d\d)", lambda m: f"| noisy input | {int(m.group(1)) + 1}.{m.group(2)}",
                    card.read_text(), count=1)
    assert broken != card.read_text()
    with pytest.raises(AssertionError, match="noisy input"):
        for m in update_tables.blocks(broken):
            check_block_numbers(m.group("body"), docs[["CBSD68", "Kodak24"].index(m.group("name"))])
    card.write_text(broken)
    assert update_tables.main(argv + ["--check"]) == 1
    yaml_broken = re.sub(r"(- type: psnr\n\s+value: )(\d+)", lambda m: m.group(1) + str(int(m.group(2)) + 1),
                         card.read_text(), count=1)
    with pytest.raises(AssertionError):
        check_model_index(yaml_broken, docs)


def test_documents_match_their_json():
    """docs/benchmark.md: every marked table equals the JSON it names (docs/bench/<SET>); a block
    without JSON must still be the placeholder; the model card's model-index holds its headline
    sets' numbers."""
    checked = 0
    for path in DOCS:
        text = path.read_text()
        used: list[dict] = []
        for m in update_tables.blocks(text):
            name, body = m.group("name"), m.group("body")
            doc = update_tables.load_json(BENCH_DOCS, name)
            if doc is None:
                assert "|" not in body, f"{path.name}: bench:{name} shows a table but {BENCH_DOCS / name} has no JSON"
                continue
            assert check_block_numbers(body, doc) > 0
            source = os.path.relpath(BENCH_DOCS / name / evaluate.JSON_NAME, path.parent)
            assert body == update_tables.block_body(doc, str(source)), \
                f"{path.name}: bench:{name} is out of date; run python scripts/update_tables.py"
            used.append(doc)
            checked += 1
        missing = REQUIRED_SETS - {d["set"] for d in used}
        assert not missing, f"{path.name}: no checked table of {', '.join(sorted(missing))} (markers gone?)"
    assert checked == len(REQUIRED_SETS)
    _, headline_sets = update_tables.headline_table(BENCH_DOCS)
    assert {d["set"] for d, _ in headline_sets} == {"CBSD68", "PolyU", "CC15"}
    assert check_model_index(CARD.read_text(), headline_sets) == 2 * len(update_tables.HEADLINE)
    # a JSON in docs/bench whose marked block still shows something else makes --check fail
    docs = [str(p) for p in (*DOCS, README, CARD)]
    assert update_tables.main(["--check", "--bench-dir", str(BENCH_DOCS)] + docs) == 0


# --------------------------------------------------------------------------- real pairs, grey, extended, --update

def test_real_pairs_grey_protocol_extended_conditions_and_update(tmp_path, capsys):
    """The three kinds of set on small real crops: a folder of real ``*_real``/``*_mean`` pairs is
    scored as it is; grey images run the paper protocol grey in, grey out; extended conditions
    come from make_bench; ``--update`` adds a method's rows and keeps the others."""
    real = tmp_path / "realset"
    real.mkdir()
    polyu = sorted(require(ROOT.parent / "shared" / "data" / "real" / "PolyU").glob("*_real.JPG"))[:2]
    for f in polyu:
        for kind in ("real", "mean"):
            img = cv2.imread(str(f).replace("_real.", f"_{kind}."), cv2.IMREAD_COLOR)[100:164, 100:180]
            cv2.imwrite(str(real / f.name.replace("_real.JPG", f"_{kind}.png")), img)
    out = tmp_path / "out" / "{set}"
    common = ["--bench", str(tmp_path / "noisy" / "{set}"), "--make-bench", str(require(BENCH_SCRIPT)),
              "--out", str(out), "--figure-images", "0", "--no-progress"]
    assert cli_main(["eval", "--clean", str(real), "--methods", "noisy,median3,nlm5", *common]) == 0
    doc = json.loads((tmp_path / "out" / "realset" / evaluate.JSON_NAME).read_text())
    assert list(doc["conditions"]) == ["real"] and doc["images"] == [f.name[:-9] for f in polyu]
    for name in doc["images"]:
        noisy = read_image(real / f"{name}_real.png")
        truth = read_image(real / f"{name}_mean.png")
        assert doc["results"]["real"]["noisy"]["per_image"][name]["psnr"] == pytest.approx(sk_psnr(truth, noisy))
    assert set(doc["results"]["real"]) == {"noisy", "median3", "nlm5"}  # nlm5 runs on real photos

    grey = tmp_path / "greyset"
    grey.mkdir()
    for f in sorted(require(ROOT.parent / "shared" / "data" / "BSD68").glob("*.png"))[:2]:
        cv2.imwrite(str(grey / f.name), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)[:64, :72])
    assert cli_main(["eval", "--clean", str(grey), "--conditions", "jpeg10", "--paper-sigmas", "25",
                     "--methods", "noisy", *common]) == 0
    gdoc = json.loads((tmp_path / "out" / "greyset" / evaluate.JSON_NAME).read_text())
    assert gdoc["grey"] is True and gdoc["conditions"]["jpeg10"]["protocol"] == "frozen"
    assert "grey images in, grey out" in (tmp_path / "out" / "greyset" / evaluate.MD_NAME).read_text()
    # --update: the model's rows join the noisy input's, which are kept as they were
    assert cli_main(["eval", "--clean", str(grey), "--conditions", "jpeg10", "--paper-sigmas", "25",
                     "--methods", "model", "--update", *common]) == 0
    both = json.loads((tmp_path / "out" / "greyset" / evaluate.JSON_NAME).read_text())
    assert set(both["results"]["paper25"]) == {"noisy", "model:shipped", "model:shipped:guided"}
    assert both["results"]["jpeg10"]["noisy"] == gdoc["results"]["jpeg10"]["noisy"]
    assert both["results"]["paper25"]["model:shipped"]["psnr"] > both["results"]["paper25"]["noisy"]["psnr"] + 5
    assert len(both["runs"]) == 2
    # a baseline run on one more condition keeps its rows on the others
    assert cli_main(["eval", "--clean", str(grey), "--conditions", "jpeg30", "--paper-sigmas", "",
                     "--methods", "noisy", "--update", *common]) == 0
    more = json.loads((tmp_path / "out" / "greyset" / evaluate.JSON_NAME).read_text())
    assert more["results"]["jpeg10"] == both["results"]["jpeg10"] and more["results"]["paper25"] == both["results"]["paper25"]
    assert set(more["results"]["jpeg30"]) == {"noisy"} and len(more["runs"]) == 3


def test_undamaged_photos_are_scored_against_themselves(tmp_path):
    """``--conditions undamaged`` gives each method the clean photo itself: the numbers are the
    method's change to a photo that needed nothing (the model's must stay small), the noisy input is left out (it would score ∞), no
    frozen benchmark is built for it, and the table and model-index carry the row."""
    clean = tmp_path / "undamagedset"
    clean.mkdir()
    for f, win in zip(sorted(require(CBSD68).glob("*.png"))[:2], CROPS):
        cv2.imwrite(str(clean / f.name), cv2.imread(str(f), cv2.IMREAD_COLOR)[win])
    out = tmp_path / "out"
    assert cli_main(["eval", "--clean", str(clean), "--bench", str(tmp_path / "noisy"), "--out", str(out),
                     "--conditions", "undamaged", "--paper-sigmas", "", "--methods", "model,noisy,median3",
                     "--figure-images", "0", "--no-progress"]) == 0
    assert not (tmp_path / "noisy").exists()
    doc = json.loads((out / evaluate.JSON_NAME).read_text())
    assert doc["conditions"] == {"undamaged": {"protocol": "undamaged", "noisy": "the clean image itself"}}
    res = doc["results"]["undamaged"]
    assert set(res) == {"model:shipped", "median3"}
    for name in doc["images"]:
        img = read_image(clean / name)
        assert res["median3"]["per_image"][name]["psnr"] == pytest.approx(sk_psnr(img, cv2.medianBlur(img, 3)))
        restored = Denoiser.from_pretrained(engine=doc["methods"]["model:shipped"]["engine"])(img)  # what it scored
        assert res["model:shipped"]["per_image"][name]["psnr"] == pytest.approx(sk_psnr(img, restored), abs=1e-6)
        assert 30 < sk_psnr(img, restored) < float("inf")  # changed, and little
    # the model leaves a clean photo closer to itself than a 3×3 median does
    assert res["model:shipped"]["psnr"] > res["median3"]["psnr"] + 3
    md = (out / evaluate.MD_NAME).read_text()
    assert "undamaged: the clean photo itself as input" in md and check_block_numbers(md, doc) == 2
    assert {e["config"] for e in update_tables.model_index_entries([doc])} == {"undamaged"}
    # a misspelt condition is refused with the list of choices, which names this one
    ap = evaluate.build_parser()
    with pytest.raises(evaluate.BenchError, match="undamaged"):
        evaluate.main_from_args(ap.parse_args(["--clean", str(clean), "--conditions", "undamagd"]))


def test_scribble_error_split_separates_strokes_from_the_rest(tmp_path, capsys):
    """scripts/scribble_error_split.py (the card's scribble limitation): on a real photo with the
    benchmark's own strokes, an error put only under the strokes or only beside them lands in
    that part, the parts add up to the image's MSE, and the script runs on the frozen benchmark."""
    split_mod = load_script(ROOT / "scripts" / "scribble_error_split.py")
    make_bench = load_script(require(BENCH_SCRIPT))
    f = sorted(require(CBSD68).glob("*.png"))[0]
    clean = read_image(f)
    noisy, _ = make_bench.degrade(clean, "scribble", make_bench.rng_for(0, "scribble", f.name))
    stroke = (noisy != clean).any(axis=2)
    assert 0.002 < stroke.mean() < 0.1
    beside = clean.copy()
    beside[~stroke] = np.clip(beside[~stroke].astype(int) + 3, 0, 255).astype(np.uint8)
    under, rest = split_mod.split(clean, noisy, beside)
    assert under == 0 and rest > 0
    under, rest = split_mod.split(clean, noisy, noisy)  # strokes left in place: all error under them
    assert rest == 0 and under == pytest.approx(((noisy.astype(float) - clean) ** 2).mean())
    one = tmp_path / "one"
    one.mkdir()
    cv2.imwrite(str(one / f.name), cv2.imread(str(f))[:96, :128])
    assert split_mod.main(["--clean", str(one), "--bench", str(tmp_path / "noisy")]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| shipped | ") and row.count("|") == 6


def test_compare_results_reads_each_change_against_a_revision(tmp_path):
    """scripts/compare_results.py on a git repo holding the real CBSD68 results: one row raised
    by 0.1 dB after the commit is the one 'better' row, and the rest read as unchanged."""
    mod = load_script(ROOT / "scripts" / "compare_results.py")
    path = tmp_path / "docs" / "bench" / "CBSD68" / "results.json"
    path.parent.mkdir(parents=True)
    data = json.loads((BENCH_DOCS / "CBSD68" / "results.json").read_text())
    path.write_text(json.dumps(data))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "results"]):
        subprocess.run(git + cmd, check=True)
    data["results"]["mixed"]["model:shipped"]["psnr"] += 0.1
    path.write_text(json.dumps(data))
    rows = mod.compare("HEAD", root=tmp_path)
    changed = [(s, c, round(now - before, 6)) for s, c, before, now in rows if now != before]
    assert changed == [("CBSD68", "mixed", 0.1)]
    assert len(rows) == len(mod.model_psnr(data)) > 7


def test_times_note_names_the_machine_each_row_was_timed_on():
    """``--update`` scores a new model on one machine and keeps baselines timed on another: the
    s/MP note names each CPU with its own rows, and rows timed before timings recorded their
    machine take the one the old document named."""
    from cleanvision.bench.run import merge_into, timed_on

    old = json.loads((BENCH_DOCS / "CBSD68" / "results.json").read_text())
    for t in old["timing"].values():
        for field in ("cpu", "torch_threads"):
            t.pop(field, None)
    old["environment"] = {**old["environment"], "cpu": "Old CPU", "torch_threads": 1}
    single = evaluate.render_markdown(old)
    assert "- Times: Old CPU, 1 thread (2 cores)" in single and "New CPU" not in single

    new = json.loads(json.dumps(old))
    new["environment"] = {**old["environment"], "cpu": "New CPU", "torch_threads": 2}
    new["methods"] = {"model:shipped": old["methods"]["model:shipped"]}
    new["results"] = {c: {"model:shipped": r["model:shipped"]} for c, r in old["results"].items()}
    new["timing"] = {"model:shipped": {**old["timing"]["model:shipped"], **timed_on(new["environment"])}}
    merged = merge_into(old, new)
    assert merged["timing"]["median3"]["cpu"] == "Old CPU" and merged["timing"]["model:shipped"]["cpu"] == "New CPU"
    note = next(x for x in evaluate.render_markdown(merged).splitlines() if x.startswith("- Times"))
    assert "CleanVision (shipped) on New CPU, 2 threads;" in note
    assert "median 3×3, median 5×5, Gaussian blur 5×5, σ 1.2, OpenCV NLM (h 10, 7, 21)" in note.split("New CPU")[1]
    assert note.count("Old CPU, 1 thread") == 1
