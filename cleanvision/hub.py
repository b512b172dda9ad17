"""Publishing a trained model to the Hugging Face Hub: weights, config and model card.

Downloading needs nothing from here: ``DnCNN.from_pretrained("user/repo")`` does it.
"""
from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi, ModelCard

from .errors import WeightsError
from .int8 import INT8_FILE, check_fresh

MODEL_FILES = ("config.json", "model.safetensors")


def prepare_upload(model_dir: str | Path, card: str | Path | None = None) -> dict[str, Path]:
    """Check a model folder and return ``{path in repo: local file}`` for the upload: weights,
    config, training_info.json and the int8 graph (``model_int8.onnx``) where present; a stale
    int8 graph (made from other weights) is refused.

    The model card (``model_card.md`` by default, if present) becomes the repo's README.md;
    it must parse as a Hugging Face ``ModelCard`` with YAML metadata.
    """
    folder = Path(model_dir)
    files: dict[str, Path] = {}
    for name in MODEL_FILES:
        if not (folder / name).is_file():
            raise WeightsError(f"{folder}: missing {name}; save the model with save_pretrained first")
        files[name] = folder / name
    for extra in ("training_info.json",):
        if (folder / extra).is_file():
            files[extra] = folder / extra
    if (folder / INT8_FILE).is_file():  # the int8 engine's graph, only if it was made from these weights
        check_fresh(folder / INT8_FILE, folder / "model.safetensors")
        files[INT8_FILE] = folder / INT8_FILE
    if card is not None:
        card = Path(card)
        parsed = ModelCard.load(card)  # raises on a card without valid metadata
        if not parsed.data.to_dict():
            raise ValueError(f"{card}: model card has no YAML metadata")
        files["README.md"] = card
    return files


def push_to_hub(model_dir: str | Path, repo_id: str, card: str | Path | None = None,
                token: str | None = None, private: bool = False, revision: str | None = None,
                api: HfApi | None = None) -> str:
    """Create the repo if needed and upload weights, config and card in one commit. Returns its URL."""
    files = prepare_upload(model_dir, card)
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path_in_repo=k, path_or_fileobj=str(v)) for k, v in files.items()]
    info = api.create_commit(repo_id, operations=ops, commit_message="Upload CleanVision model",
                             revision=revision, repo_type="model")
    return str(getattr(info, "commit_url", info))
