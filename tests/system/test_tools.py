"""Every tool the system tests call is installed: one test that names all the missing ones at once (the
fixtures that need a tool check it too, so a selection with -k says the same)."""

from support.session import REQUIRED_TOOLS, require


def test_required_tools_present():
    require(*REQUIRED_TOOLS)
