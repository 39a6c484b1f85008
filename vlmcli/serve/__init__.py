"""`vlmcli serve`: the model behind an OpenAI-compatible HTTP API, document endpoints and a page to use them
(FastAPI + uvicorn, the `vlmcli[serve]` extra; imported only by the serve command).

server.py loads the model once and runs uvicorn; app.py holds the routes; service.py the loaded model, its one
worker thread (worker.py) and how requests reach it; chat.py and documents.py the endpoints' own work;
errors.py the one mapping from errors to statuses; limits.py the body cap and metrics middlewares; static/ the
page at `/`.
"""
