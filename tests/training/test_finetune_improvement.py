"""A fine-tune never publishes an untrained adapter silently (issue 24 item 2), and its README is our card."""

from __future__ import annotations

from tests.training.conftest import read_json
import subprocess
import sys

from tests.training.test_finetune_cli import ENV, QUICK, ROOT, finetune, snapshot


def _lora_b_sums(out) -> list[float]:
    from safetensors.torch import load_file

    return [float(v.abs().sum()) for k, v in load_file(out / "adapter_model.safetensors").items() if "lora_B" in k]


def test_a_run_shorter_than_the_eval_interval_is_evaluated_at_its_last_step(tiny_model_dir, json_repo, tmp_path):
    out = tmp_path / "short"
    result = finetune(str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--max-steps", "6",
                      "--eval-every", "50", "--lr", "3e-3", *QUICK)
    assert result.returncode == 0, result.stderr
    meta = read_json(out / "repocomplete-adapter.json")
    metrics = meta["metrics"]
    assert metrics["history"][-1]["step"] == 6 and "heldout_loss" in metrics["history"][-1]   # evaluated at the end
    assert metrics["best_step"] == 6                                   # not the step-0 weights
    assert metrics["after"]["heldout_loss"] < metrics["before"]["heldout_loss"]
    assert meta["improved"] is True and meta["lora_b_all_zero"] is False
    assert all(s > 0 for s in _lora_b_sums(out))
    assert "NOT IMPROVED" not in result.stdout

    card = (out / "README.md").read_text()
    assert "Model Card for Model ID" not in card and "[More Information Needed]" not in card   # not HF's template
    assert meta["base_model"]["hash"] in card and str(tiny_model_dir) in card
    assert f"{metrics['before']['heldout_loss']:.4f} → {metrics['after']['heldout_loss']:.4f}" in card
    assert "| Steps | 6 (best held-out loss at step 6)" in card
    assert f"{meta['data_manifest']['counts']['train']['total']} training" in card and "`jsonpkg`" in card
    assert f"repocomplete serve --model {tiny_model_dir} --adapter short={out}" in card
    assert "repocomplete finetune " + str(json_repo) in card                 # how to reproduce it
    assert "| Improved on the base | yes" in card

    # served on another base (same architecture and shapes, other weights) it is refused in one line
    from tests.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "other-base", seed=1)
    served = subprocess.run(
        [sys.executable, "-m", "repocomplete", "complete", str(json_repo / "encoder.py"), "--line", "40", "--col", "5",
         "--model", str(other), "--adapter", f"short={out}", "--max-tokens", "4", "--json"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert served.returncode == 2, served.stderr
    error = served.stderr.strip().splitlines()[-1]
    assert error.startswith("error: adapter ") and "was trained on base model" in error, served.stderr
    assert meta["base_model"]["hash"][:12] in error and f"--model {tiny_model_dir}" in error
    assert "Traceback" not in served.stderr


def test_an_adapter_that_does_not_improve_is_refused_unless_allowed(tiny_model_dir, json_repo, tmp_path):
    # a learning rate this small leaves every held-out logit as it was: the best held-out loss is step 0's
    out = tmp_path / "diverged"
    args = [str(json_repo), "--base", str(tiny_model_dir), "--out", str(out), "--max-steps", "4",
            "--eval-every", "2", "--save-every", "0", "--lr", "1e-30", *QUICK]
    before = snapshot(tmp_path)
    refused = finetune(*args)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training did not improve on the base model: held-out loss"), refused.stderr
    assert "(best at step 0)" in lines[-1] and "every LoRA B matrix is zero" in lines[-1]
    assert "--allow-no-improvement" in lines[-1] and "Traceback" not in refused.stderr
    assert not out.exists() and snapshot(tmp_path) == before          # nothing published, nothing left

    allowed = finetune(*args, "--allow-no-improvement")
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: training did not improve on the base model" in allowed.stderr
    assert "NOT IMPROVED" in allowed.stdout
    meta = read_json(out / "repocomplete-adapter.json")
    assert meta["improved"] is False and meta["lora_b_all_zero"] is True and meta["metrics"]["best_step"] == 0
    assert all(s == 0 for s in _lora_b_sums(out))
    card = (out / "README.md").read_text()
    assert "**NO — not improved**" in card and "every LoRA B matrix is zero" in card


def test_the_card_names_the_split_that_chose_the_held_out_samples():
    from training.finetune.card import _split_sentence

    time_split = {"split": {"method": "git-time", "cutoff": "abc123", "commits": []}}
    by_hash = {"split": {"method": "file-hash", "commits": []}}
    recent = {"split": {"method": "git-time", "commits": ["def456"]}}
    assert "as it was at the cut-off commit" in _split_sentence([time_split])
    assert "seeded share of whole files" in _split_sentence([by_hash, by_hash])   # corpora without history
    assert "changed in the most recent commits" in _split_sentence([recent])
    assert "or a seeded share where no history names" in _split_sentence([recent, by_hash])
