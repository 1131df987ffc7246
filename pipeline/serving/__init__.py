"""The model server (`python -m pipeline serve`): a registered model's alias over HTTP with MLflow's
scoring protocol (app), following the alias and logging request drift (follow), the protocol's
routes and one-line errors (scoring). docs/serving.md."""
