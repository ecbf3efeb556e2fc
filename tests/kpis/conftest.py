from tests.kpis.test_kpis import june  # noqa: F401 - the hand-computed dataset
from tests.web.conftest import as_role, login, pages, quick_user  # noqa: F401
