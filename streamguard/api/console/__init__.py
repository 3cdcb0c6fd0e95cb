"""The moderators' console at ``/console/``: pages served by the daemon, working offline.

Each page is HTML rendered here from ``templates/`` with ``static/console.js`` and
``static/console.css`` (nothing fetched from elsewhere; the Content-Security-Policy forbids
it). The pages carry no data and need no token: the script asks for the token on the login
page, keeps it in the tab's ``sessionStorage`` only, and fetches everything from the API with
it. Pages: Rooms (``/console/``), Incidents (``/console/incidents``), one incident
(``/console/incidents/{id}``), Search (``/console/search``: transcripts and labels, through
``/v1/results?q=``), Try it (``/console/try``: ``/v1/moderate/file`` and ``/url``) and Usage
(``/console/usage``: ``/v1/usage`` drawn as SVG charts by the script, and its CSV).
"""

from __future__ import annotations

from streamguard.api.console.pages import ConsolePages
from streamguard.api.console.setup import ConsoleSetup

__all__ = ["ConsolePages", "ConsoleSetup"]
