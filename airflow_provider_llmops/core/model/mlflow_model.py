"""Registered versions as MLflow Models: the `python_function` flavor over the same safetensors files, no pickles.

`write_mlflow_model(model_dir, task)` turns a fine-tuned model folder (as `training.train` writes it) into an MLflow
Model in place: it adds `MLmodel`, `requirements.txt`, `python_env.yaml`, `conda.yaml`, `input_example.json` and
`serving_input_example.json` beside the weights, which stay where every consumer already finds them. The flavor
names this module as its `loader_module` and has no `data` path, so MLflow hands the folder itself to
`_load_pyfunc`, which loads it with `modeling.load_classifier` or `modeling.load_generator` (safetensors only,
`trust_remote_code=False`). Nothing is pickled: loading imports this package, which the requirements pin.

Signatures (input: one string column `text`):

* `sequence-classification`: output columns `label` (string) and `score` (double, the probability of that label);
  the same labels and scores as `load_classifier(model_dir).predict_proba` (argmax and max).
* `causal-lm`: output column `generated_text` (string, the continuation without the prompt); params
  `max_new_tokens` (long, default 64, at most `modeling.MAX_NEW_TOKENS_LIMIT`) and `do_sample` (boolean, default
  false: greedy).

Requirements are pinned to what trained the model: `torch`, `transformers` and `airflow-provider-llmops` at their
installed versions (a local build label like `+cpu` dropped), plus MLflow itself, which MLflow adds.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from airflow_provider_llmops import __version__
from airflow_provider_llmops.core.model.contract import MLMODEL_FILE
from airflow_provider_llmops.core.model.modeling import (
    CLASSIFIER_TASK,
    DEFAULT_MAX_NEW_TOKENS,
    GENERATOR_TASK,
    model_task,
)
from airflow_provider_llmops.errors import ConfigurationError

LOADER_MODULE = "airflow_provider_llmops.core.model.mlflow_model"
PACKAGE = "airflow-provider-llmops"
TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
SCORE_COLUMN = "score"
GENERATED_COLUMN = "generated_text"
EXAMPLES = {
    CLASSIFIER_TASK: ["An example text to classify."],
    GENERATOR_TASK: ["An example prompt to continue"],
}
# what MLflow's save_model writes that belongs beside the weights (anything else it might add is left out)
MLFLOW_FILES = (
    MLMODEL_FILE,
    "requirements.txt",
    "python_env.yaml",
    "conda.yaml",
    "constraints.txt",
    "input_example.json",
    "serving_input_example.json",
)


def _installed(package: str) -> str:
    version = metadata.version(package)
    return version.split("+", 1)[0]  # a local label (torch 2.13.0+cpu) is not installable from an index


def pip_requirements() -> list[str]:
    """The pinned requirements of a registered model: torch, transformers and this package (MLflow adds itself)."""
    return [
        f"torch=={_installed('torch')}",
        f"transformers=={_installed('transformers')}",
        f"{PACKAGE}=={__version__}",
    ]


def signature(task: str) -> Any:
    """The MLflow signature of a model of `task` (see the module docstring)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", TEXT_COLUMN)])
    if task == CLASSIFIER_TASK:
        return ModelSignature(inputs, Schema([ColSpec("string", LABEL_COLUMN), ColSpec("double", SCORE_COLUMN)]))
    if task == GENERATOR_TASK:
        params = ParamSchema(
            [ParamSpec("max_new_tokens", "long", DEFAULT_MAX_NEW_TOKENS), ParamSpec("do_sample", "boolean", False)]
        )
        return ModelSignature(inputs, Schema([ColSpec("string", GENERATED_COLUMN)]), params)
    raise ConfigurationError(f"no MLflow signature for task {task!r}")


def write_mlflow_model(model_dir: str | Path, task: str | None = None, examples: Sequence[str] | None = None) -> Path:
    """Make `model_dir` an MLflow Model in place (see the module docstring); returns the path of its `MLmodel`.
    `task` defaults to the training record's; `examples` (input texts) to a neutral one."""
    import pandas as pd
    from mlflow.models import Model
    from mlflow.pyfunc import save_model

    directory = Path(model_dir)
    task = task or model_task(directory)
    example = pd.DataFrame({TEXT_COLUMN: list(examples or EXAMPLES[task])})
    clashes = [name for name in MLFLOW_FILES if (directory / name).exists()]
    if clashes:
        raise ConfigurationError(f"{directory} already holds {clashes}; it is an MLflow Model already")
    with tempfile.TemporaryDirectory(prefix="llmops-mlmodel-") as scratch:
        staged = Path(scratch) / "model"
        save_model(
            str(staged),
            loader_module=LOADER_MODULE,
            signature=signature(task),
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={"task": task, "llmops_provider_version": __version__},
        )
        for name in MLFLOW_FILES:
            if (staged / name).is_file():
                shutil.copy2(staged / name, directory / name)
    mlmodel = Model.load(str(directory / MLMODEL_FILE))
    mlmodel.model_size_bytes = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    mlmodel.save(str(directory / MLMODEL_FILE))
    return directory / MLMODEL_FILE


def _texts(model_input: Any) -> list[str]:
    """The input texts from what pyfunc hands over: a DataFrame with a `text` column (or one column), a Series, a
    list of strings, one string, or a dict {"text": [...]} (which MLflow's schema enforcement turns into one row
    holding the list: such rows are flattened)."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            values = model_input[TEXT_COLUMN].tolist()
        elif len(model_input.columns) == 1:
            values = model_input.iloc[:, 0].tolist()
        else:
            raise ConfigurationError(f"input needs a '{TEXT_COLUMN}' column, got {list(model_input.columns)}")
    elif isinstance(model_input, pd.Series):
        values = model_input.tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, dict) and TEXT_COLUMN in model_input:
        raw = model_input[TEXT_COLUMN]
        values = [raw] if isinstance(raw, str) else list(raw)
    else:
        values = list(model_input)
    if values and all(isinstance(v, (list, tuple)) or type(v).__name__ == "ndarray" for v in values):
        values = [item for v in values for item in v]  # {"text": [...]} arrives as one row holding the list
    bad = [i for i, value in enumerate(values) if not isinstance(value, str)]
    if bad:
        raise ConfigurationError(f"every '{TEXT_COLUMN}' must be a string; rows {bad[:10]} are not")
    return values


class ClassifierPyfunc:
    """pyfunc predict for a classifier: texts -> DataFrame(label, score)."""

    def __init__(self, model_dir: str | Path) -> None:
        from airflow_provider_llmops.core.model.modeling import load_classifier

        self.classifier = load_classifier(model_dir)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        texts = _texts(model_input)
        probs = self.classifier.predict_proba(texts)
        best = probs.argmax(axis=1) if len(texts) else []
        return pd.DataFrame(
            {
                LABEL_COLUMN: [self.classifier.labels[i] for i in best],
                SCORE_COLUMN: [float(probs[row, i]) for row, i in enumerate(best)],
            },
            columns=[LABEL_COLUMN, SCORE_COLUMN],
        )


class GeneratorPyfunc:
    """pyfunc predict for a causal LM: prompts -> DataFrame(generated_text); params max_new_tokens, do_sample."""

    def __init__(self, model_dir: str | Path) -> None:
        from airflow_provider_llmops.core.model.modeling import load_generator

        self.generator = load_generator(model_dir)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        params = params or {}
        generated = self.generator.generate(
            _texts(model_input),
            max_new_tokens=int(params.get("max_new_tokens", self.generator.max_new_tokens)),
            do_sample=bool(params.get("do_sample", False)),
        )
        return pd.DataFrame({GENERATED_COLUMN: generated}, columns=[GENERATED_COLUMN])


def _load_pyfunc(data_path: str) -> ClassifierPyfunc | GeneratorPyfunc:
    """The pyfunc entry point MLflow calls with the model folder (the flavor has no `data` path)."""
    if model_task(data_path) == GENERATOR_TASK:
        return GeneratorPyfunc(data_path)
    return ClassifierPyfunc(data_path)
