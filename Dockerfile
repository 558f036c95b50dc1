# One image for every finsent service (worker, dashboard, migrations, producers).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORKDIR /app
# torch first and alone: the CPU build (use a CUDA base image + torch==2.13.0 for GPUs).
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY finsent ./finsent
COPY ingest ./ingest
COPY scorer ./scorer
COPY storage ./storage
COPY alerts ./alerts
COPY dashboard ./dashboard
COPY models ./models
RUN pip install --no-cache-dir -e .
USER 1000
ENTRYPOINT ["finsent"]
