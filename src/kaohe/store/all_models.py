"""Import every module that defines tables, so ``Base.metadata`` is complete
(Alembic's env, ``create_all`` in tools).  Packages with tables add themselves here."""

from kaohe.store import models  # noqa: F401
from kaohe.supplies import models as supplies_models  # noqa: F401
