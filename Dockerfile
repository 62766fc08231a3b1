FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openssl ca-certificates \
    tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng ghostscript qpdf poppler-utils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY storage storage
COPY archive archive
COPY capture capture
COPY workflow workflow
COPY accounting_bridge accounting_bridge
COPY coffre coffre
RUN pip install --no-cache-dir .
USER 1000
CMD ["coffre", "serve", "--host", "0.0.0.0"]
