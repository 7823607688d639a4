"""Exporters: a run's findings into the tools the training script already uses.

One module each (tensorboard.py, wandb.py, mlflow.py), each with `install(recorder)`,
registered with the framework integrations in epochwatch/integrations/__init__.py
(INTEGRATIONS: installed when the script imports TensorFlow, wandb or mlflow). Each reads
the findings through its own ledger (analysis/ledger.py), so it shows what the console and
the report show; each can be switched off (EPOCHWATCH_TENSORBOARD/WANDB/MLFLOW=0) and a
failure turns off only that exporter (the Guard).
"""
