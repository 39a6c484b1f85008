"""The examples for clusters parse as their tools read them, and name what vlmcli and the models have."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_accelerate_configs_load_and_name_layers_the_model_has(tiny_idefics3):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils.dataclasses import get_module_class_from_name
    from transformers import AutoModelForImageTextToText

    ddp = ClusterConfig.from_yaml_file(ROOT / "examples/accelerate/ddp_multinode.yaml")
    fsdp = ClusterConfig.from_yaml_file(ROOT / "examples/accelerate/fsdp_idefics3_8b.yaml")
    assert (ddp.distributed_type.value, ddp.num_machines, fsdp.distributed_type.value) == ("MULTI_GPU", 2, "FSDP")
    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)  # Idefics3 with a Llama text model
    for name in fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","):
        assert get_module_class_from_name(model, name.strip()) is not None, name


def test_job_array_examples_agree_with_the_cli():
    job = yaml.safe_load((ROOT / "examples/cluster/k8s_indexed_job.yaml").read_text())
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["vlmcli", "ocr"] and "--resume" in command
    assert int(command[command.index("--shard-count") + 1]) == job["spec"]["completions"]
    script = ROOT / "examples/cluster/slurm_array.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    run = [line for line in script.read_text().splitlines() if line.startswith("srun vlmcli ocr")]
    assert "#SBATCH --array=" in script.read_text() and len(run) == 1 and "--shard" not in run[0]


@pytest.mark.parametrize("option", ["--shard", "--shard-count", "--ray", "--ray-actors", "--resume"])
def test_options_the_examples_use_exist(option):
    from typer.testing import CliRunner

    from vlmcli.cli import app

    assert option in CliRunner().invoke(app, ["ocr", "--help"], env={"COLUMNS": "200"}).stdout
