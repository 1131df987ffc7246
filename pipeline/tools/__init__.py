"""What reads the store or writes make's graph: make's stage graph (makefile), the params schema
(schema), reports (report), the MLflow UI and tracking server (ui), batch prediction (predict) and
retrieval (retrieve)."""
