"""(placeholder: the supplies pages and the public finder)"""

from fastapi import APIRouter

router = APIRouter()
