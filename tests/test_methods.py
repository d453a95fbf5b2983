"""Every method: its own rank and display name, and two epochs through run() deterministically;
the command line; the cache key. Each method's own behaviour is tested in tests/test_<name>.py."""
import pytest
import torch

from mcrlib.methods import METHODS
from mcrlib.methods.base import Method, in_table_order
from mcrlib.runs import run
from tests.conftest import TINY_RUN


def test_every_method_has_its_own_rank_and_display_name():
    classes = {name: METHODS[name] for name in METHODS}
    ranks = {name: cls.rank for name, cls in classes.items()}
    assert all(cls.display != Method.display and cls.rank != Method.rank for cls in classes.values()), \
        sorted(name for name, cls in classes.items() if cls.display == Method.display or cls.rank == Method.rank)
    assert len(set(ranks.values())) == len(ranks), ranks
    # the contract's order for the methods of the paper's tables
    paper = ["ensemble", "joint", "multiloss", "unipre_frozen", "unipre_finetuned", "ogm", "agm", "mlb",
             "mslr", "pmr", "mmcosine", "mcr"]
    assert [n for n in in_table_order(METHODS) if n in paper] == paper


def test_command_line_run(tmp_path, capsys):
    import yaml
    from mcrlib.cli import main
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "method": {"name": "joint"}}))
    main([str(config), "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert '"test_acc_fused"' in out and "saved in" in out


def test_cache_key_follows_the_method_code_and_config():
    from mcrlib.code_closure import source_digest
    from mcrlib.config import RunConfig, from_dict
    from mcrlib.run_key import code_modules
    from mcrlib.runs import run_key
    joint = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}})
    assert run_key(joint) == run_key(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}}))
    assert run_key(joint) != run_key(from_dict(RunConfig, {**TINY_RUN, "method": {"name": "joint"}, "seed": 1}))
    # joint and mcr live in different files: editing one method does not invalidate the other
    code = {name: source_digest(code_modules(from_dict(RunConfig, {**TINY_RUN, "method": {"name": name}})))
            for name in ("joint", "multiloss", "mcr")}
    assert code["joint"] != code["mcr"]
    assert code["joint"] == code["multiloss"]  # same file


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"unimodal"}))
def test_every_method_trains_two_epochs_deterministically(name, tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": name, "params": {"copies": 4} if name == "mcr" else {}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert a.metrics == b.metrics and a.history == b.history
    torch.testing.assert_close(a.predictions["test"]["fused"], b.predictions["test"]["fused"], rtol=0, atol=0)
    assert 0 <= a.metrics["test_acc_fused"] <= 1
    assert name == "ensemble" or len(a.history) == 2
