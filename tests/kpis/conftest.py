from tests.kpis.test_kpis import june  # noqa: F401 - the hand-computed dataset
from tests.web.browser import (  # noqa: F401 - fixtures for pytest
    browser_page,
    chromium,
    live_app,
    live_server,
    make_live_user,
    new_page,
)
from tests.web.conftest import as_role, login, pages, quick_user  # noqa: F401
