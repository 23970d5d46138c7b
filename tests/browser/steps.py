"""What a person does in the browser, step by step, and the checks run on each page.

Locators are the ones a person (or a screen reader) would use: headings, labels and
button names. Every ``expect`` auto-waits (see ``TIMEOUT_MS`` in the conftest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from playwright.sync_api import Locator, Page, expect

from connections.models import Connection, Customer, CustomerUser, GrantType
from tests.e2e.conftest import SandboxServer

PORTAL_USERNAME = "carol"
PORTAL_PASSWORD = "carol-portal-password"
SCOPES = "read write offline_access"
CONNECTION_NAME = "Sandbox widgets"
CONNECT_TIMEOUT_MS = 30_000  # Connect → consent → exchange → "Connected"

# Text a customer must never see: stack traces, exception names, raw OAuth error codes.
TECHNICAL = re.compile(
    r"Traceback|File \"|Exception|Error:|access_denied|invalid_\w+|error=|"
    r"Internal Server Error|Server Error \(500\)|Page not found",
)


@dataclass(frozen=True)
class Portal:
    """The live portal, the sandbox it is registered with, and the test's data."""

    url: str
    sandbox: SandboxServer
    customer: Customer
    connection: Connection


def portal_data(sandbox: SandboxServer) -> tuple[Customer, Connection]:
    """A customer with one portal user, and the two sandbox Connections of the demo."""
    customer = Customer.objects.create(name="Acme Widgets Ltd")
    user = get_user_model().objects.create_user(PORTAL_USERNAME, password=PORTAL_PASSWORD)
    CustomerUser.objects.create(user=user, customer=customer)
    app = sandbox.create_app(
        default_scopes=SCOPES, revocation_url=f"{sandbox.base_url}/o/revoke_token/"
    )
    connection = Connection.objects.create(
        app=app,
        name=CONNECTION_NAME,
        slug="sandbox-widgets",
        description="Read and write your widgets",
    )
    machine = sandbox.create_machine_app()
    Connection.objects.create(
        app=machine,
        name="Sandbox service account",
        slug="sandbox-service-account",
        grant_type=GrantType.CLIENT_CREDENTIALS,
    )
    return customer, connection


class Screenshots:
    """Full-page screenshots of a test's steps, named ``<name>.png``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []

    def __call__(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        return path


# --- accessibility and small screens -----------------------------------------------

_DOM_PROBLEMS = """
() => {
  const problems = [];
  const squash = (s) => (s || "").replace(/\\s+/g, " ").trim();
  const byIds = (ids) => squash((ids || "").split(/\\s+/).filter(Boolean)
    .map((id) => (document.getElementById(id) || {}).textContent || "").join(" "));
  const show = (el) => el.outerHTML.replace(/\\s+/g, " ").slice(0, 160);
  for (const el of document.querySelectorAll("input, select, textarea")) {
    const type = (el.getAttribute("type") || "text").toLowerCase();
    if (type === "hidden") continue;
    const labelled = squash(el.getAttribute("aria-label"))
      || byIds(el.getAttribute("aria-labelledby"))
      || squash([...(el.labels || [])].map((l) => l.textContent).join(" "))
      || (["submit", "button", "reset"].includes(type) && squash(el.value));
    if (!labelled) problems.push(`form control without a label or aria-label: ${show(el)}`);
  }
  for (const el of document.querySelectorAll("button, [role=button]")) {
    const named = squash(el.getAttribute("aria-label"))
      || byIds(el.getAttribute("aria-labelledby"))
      || squash(el.textContent) || squash(el.getAttribute("title"));
    if (!named) problems.push(`button without an accessible name: ${show(el)}`);
  }
  // WCAG 2.5.3 (label in name): a control's aria-label must contain the words shown on
  // screen, or speech-input users saying "click Connect" miss the control.
  const controls = "a[href][aria-label], button[aria-label], [role=button][aria-label], "
    + "[role=link][aria-label]";
  for (const el of document.querySelectorAll(controls)) {
    const shown = squash(el.innerText).toLowerCase();
    const label = squash(el.getAttribute("aria-label")).toLowerCase();
    if (shown && !label.includes(shown)) {
      problems.push(`aria-label does not contain the visible label: ${show(el)}`);
    }
  }
  const h1s = document.querySelectorAll("h1");
  if (h1s.length !== 1) {
    problems.push(`${h1s.length} h1 elements, not exactly one: `
      + [...h1s].map((h) => JSON.stringify(squash(h.textContent))).join(", "));
  }
  if (!squash(document.documentElement.getAttribute("lang"))) {
    problems.push("<html> has no lang attribute");
  }
  if (!squash(document.title)) problems.push("the page has no <title>");
  return problems;
}
"""

# Roles whose unnamed, non-ignored nodes in Chromium's accessibility tree are a problem.
_NAMED_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "listbox",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "textbox",
}


def accessibility_problems(page: Page) -> list[str]:
    """Smoke checks: labelled controls, named buttons and links, one h1, lang, title.

    The DOM check is explicit (label, aria-label or aria-labelledby); Chromium's own
    accessibility tree then confirms the names it computes for every control.
    """
    problems: list[str] = page.evaluate(_DOM_PROBLEMS)
    cdp = page.context.new_cdp_session(page)
    try:
        tree = cdp.send("Accessibility.getFullAXTree")
    finally:
        cdp.detach()
    for node in tree["nodes"]:
        role = node.get("role", {}).get("value", "")
        name = str(node.get("name", {}).get("value", "")).strip()
        if role in _NAMED_ROLES and not node.get("ignored") and not name:
            problems.append(f"Chromium computes no accessible name for a {role} (AX tree)")
    return problems


_OVERFLOW = """
() => {
  const width = window.innerWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width && (box.right > width + 0.5 || box.left < -0.5)) {
      wide.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}`
        + `${el.className && typeof el.className === "string" ? "." + el.className.trim()
          .replace(/\\s+/g, ".") : ""} [${Math.round(box.left)}..${Math.round(box.right)}]`);
    }
  }
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: width,
    wide: wide.slice(0, 10),
  };
}
"""


def horizontal_overflow(page: Page) -> dict[str, Any]:
    """The page's scroll width against the viewport, and the elements sticking out."""
    return page.evaluate(_OVERFLOW)


def check_portal_page(page: Page, *, phone_width: int | None = None) -> None:
    """Accessibility smoke on a portal page; on a phone also no horizontal scrolling."""
    problems = accessibility_problems(page)
    assert not problems, f"{page.url}:\n" + "\n".join(problems)
    if phone_width is not None:
        seen = horizontal_overflow(page)
        # The meta viewport must take effect, or a phone lays the page out 980 px wide.
        assert seen["innerWidth"] == phone_width, (page.url, seen)
        assert seen["scrollWidth"] <= seen["innerWidth"], (page.url, seen)


def no_technical_details(page: Page) -> None:
    """The visible text carries no stack trace, exception or raw error code."""
    text = page.locator("body").inner_text()
    found = TECHNICAL.search(text)
    assert found is None, f"technical detail {found.group(0)!r} shown on {page.url}:\n{text}"


# --- the steps ---------------------------------------------------------------------


def connection_card(page: Page, name: str = CONNECTION_NAME) -> Locator:
    """A connection's card on the portal page (a region named by its heading)."""
    return page.get_by_role("region", name=name, exact=True)


def shown(label: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(label)}\s*$")


def button(scope: Page | Locator, label: str) -> Locator:
    """The button showing ``label`` (its accessible name may say more, such as which
    connection it acts on; the accessibility check holds it to contain the label)."""
    return scope.get_by_role("button").filter(has_text=shown(label))


def link(scope: Page | Locator, label: str) -> Locator:
    """The link showing ``label`` (see ``button``)."""
    return scope.get_by_role("link").filter(has_text=shown(label))


def portal_login(page: Page, portal: Portal, *, before_submit: Any = None) -> None:
    """Open the portal, get sent to its login page, and sign in as the customer user."""
    page.goto(f"{portal.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    page.get_by_label("Username").fill(PORTAL_USERNAME)
    page.get_by_label("Password").fill(PORTAL_PASSWORD)
    if before_submit is not None:
        before_submit()
    button(page, "Log in").click()
    expect(page).to_have_url(f"{portal.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your connections")


def press_connect(page: Page, portal: Portal, label: str = "Connect") -> None:
    """Press Connect (or Reconnect) on the connection's card: off to the sandbox."""
    button(connection_card(page), label).click()
    expect(page).to_have_url(re.compile("^" + re.escape(f"{portal.sandbox.base_url}/")))


def sandbox_sign_in(page: Page, portal: Portal, *, before_submit: Any = None) -> None:
    """Sign in at the sandbox as alice; ends on DOT's consent page."""
    expect(page).to_have_url(
        re.compile(re.escape(f"{portal.sandbox.base_url}/accounts/login/") + r"\?next=/o/")
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the sandbox")
    page.get_by_label("Username").fill(portal.sandbox.username)
    page.get_by_label("Password").fill(portal.sandbox.password)
    if before_submit is not None:
        before_submit()
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect_consent_page(page, portal)


def expect_consent_page(page: Page, portal: Portal) -> None:
    """DOT's consent page: "Authorize <client>?" with Cancel and Authorize buttons."""
    expect(page).to_have_url(re.compile("^" + re.escape(portal.sandbox.authorize_url)))
    expect(page.get_by_role("heading", name=re.compile(r"^Authorize .+\?$"))).to_be_visible()
    expect(page.get_by_role("button", name="Authorize", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()


def wait_until_connected(page: Page, portal: Portal) -> None:
    """On the connection's page, wait (it polls while Connecting… and reloads) for it to
    say Connected."""
    expect(page).to_have_url(re.compile(re.escape(portal.url) + r"/connections/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(CONNECTION_NAME)
    expect(page.locator("#status")).to_have_text("Connected", timeout=CONNECT_TIMEOUT_MS)


def granted_scopes(page: Page) -> set[str]:
    scopes = page.locator("p", has_text="Granted scopes:").locator("code")
    expect(scopes).to_be_visible()
    return set(scopes.inner_text().split())


def back_to_connections(page: Page, portal: Portal) -> None:
    link(page, "← All connections").click()
    expect(page).to_have_url(f"{portal.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your connections")
