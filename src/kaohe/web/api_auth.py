"""(placeholder: filled in by its area's work)"""

from fastapi import APIRouter

router = APIRouter()
