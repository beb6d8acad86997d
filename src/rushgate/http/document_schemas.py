"""Bodies of the application documents API (uploads are multipart, see ``http/uploads``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DocumentOut(BaseModel):
    id: int
    kind: str = Field(description="One of the round's required documents, or other.")
    filename: str
    content_type: str = Field(description="From the file's bytes, not from the upload.")
    size: int
    sha256: str
    uploaded_at: datetime
