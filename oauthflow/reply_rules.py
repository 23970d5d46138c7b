"""The table that decides what a refused token reply means: data, one row per pattern.

``classify_reply`` reads a reply's facts (status, the provider's error code and text,
which grant, which flavor) and returns the first matching row's ``Verdict``. Rows cover
RFC 6749 §5.2 and what real providers send outside it; each row names its source and is
tested by ``tests/contract``. Order matters: specific rows (a "too early" refusal, a
redirect-URI complaint inside ``invalid_grant``) come before the general ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from oauthflow.outcomes import Key, Outcome, Verdict

EXCHANGE, REFRESH, CLIENT_CREDENTIALS = "exchange", "refresh", "client_credentials"
ANY_GRANT = frozenset({EXCHANGE, REFRESH, CLIENT_CREDENTIALS})


@dataclass(frozen=True)
class ReplyFacts:
    """What the classifier needs of one refused reply.

    ``error`` is the provider's error code, lower-cased (see ``tokens.error_fields``),
    ``text`` its description; ``grant`` is the token request's kind; ``json_flavor``
    whether the body was JSON (flavors 2, 4, 6); ``known_flavor`` whether this flavor
    has worked for the App before (its 5xx is then an outage, not a format problem).
    """

    status: int
    error: str
    text: str
    grant: str
    json_flavor: bool = False
    known_flavor: bool = False
    html: bool = False
    readable: bool = True


@dataclass(frozen=True)
class Rule:
    """One pattern. Empty conditions match anything; all given conditions must hold.

    ``codes``: the error code is one of these; ``text``: the description matches this
    regular expression (case-insensitive); ``statuses``: the HTTP status is in this
    inclusive range; ``grants``: the request's kind is one of these.
    """

    key: Key
    outcome: Outcome
    source: str
    codes: frozenset[str] = frozenset()
    text: str = ""
    statuses: tuple[int, int] | None = None
    grants: frozenset[str] = ANY_GRANT
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.text:
            object.__setattr__(self, "pattern", re.compile(self.text, re.IGNORECASE))

    def matches(self, facts: ReplyFacts) -> bool:
        if facts.grant not in self.grants:
            return False
        if self.statuses and not self.statuses[0] <= facts.status <= self.statuses[1]:
            return False
        if self.codes and facts.error not in self.codes:
            return False
        return not self.pattern or bool(self.pattern.search(facts.text))


def _codes(*names: str) -> frozenset[str]:
    return frozenset(names)


G = Key  # short names keep the table readable
O = Outcome  # noqa: E741 - a table's column alias

RATE_LIMIT_CODES = _codes(
    "ratelimited",  # Slack
    "rate_limited",
    "rate_limit_exceeded",
    "too_many_requests",
    "slow_down",  # RFC 8628 §3.5
    "oauthexception:4",  # Facebook: application request limit
    "oauthexception:17",  # Facebook: user request limit
    "oauthexception:32",  # Facebook: page request limit
    "oauthexception:613",  # Facebook: calls exceed the rate
)
OUTAGE_CODES = _codes(
    "temporarily_unavailable",  # RFC 6749 §4.1.2.1, sent by token endpoints too (Entra ID)
    "server_error",
    "service_unavailable",
    "internal_error",
    "oauthexception:1",  # Facebook: unknown error, retry
    "oauthexception:2",  # Facebook: service temporarily unavailable
)
REDIRECT_CODES = _codes(
    "redirect_uri_mismatch",  # GitHub, Google
    "bad_redirect_uri",  # Slack, HubSpot's status BAD_REDIRECT_URI
    "invalid_redirect_uri",
    "oauthexception:191",  # Facebook: redirect URI not allowed
)
CLIENT_CODES = _codes(
    "invalid_client",  # RFC 6749 §5.2
    "incorrect_client_credentials",  # GitHub
    "bad_client_secret",  # Slack
    "invalid_client_id",  # Slack, Salesforce
    "invalid_client_secret",
    "bad_client_id",  # HubSpot's status BAD_CLIENT_ID
    "invalid_client_credentials",
    "unauthorized",
    "invalid_auth",  # Slack oauth.v2.access: the client's authentication was not read
    "not_authed",  # Slack: no authentication sent (credentials where Slack did not look)
    "oauthexception:101",  # Facebook: error validating application
)
FORMAT_CODES = _codes(
    "unsupported_grant_type",  # a JSON-only server cannot read a form's grant_type
    "invalid_grant_type",  # Slack
    "unsupported_media_type",
    "invalid_content_type",
    "bad_grant_type",  # HubSpot's status BAD_GRANT_TYPE
)
DEAD_CODE_CODES = _codes(
    "invalid_grant",  # RFC 6749 §5.2
    "bad_verification_code",  # GitHub
    "invalid_code",  # Slack
    "code_already_used",  # Slack
    "code_expired",
    "expired_code",
    "bad_auth_code",  # HubSpot's status BAD_AUTH_CODE
    "invalid_authorization_code",
    "authorization_code_expired",
    "unverified_user_email",  # GitHub: the user must verify an email, then authorize again
)
DEAD_REFRESH_CODES = _codes(
    "invalid_grant",  # RFC 6749 §5.2
    "bad_refresh_token",  # GitHub, HubSpot's status BAD_REFRESH_TOKEN
    "invalid_refresh_token",  # Slack
    "refresh_token_expired",
    "expired_refresh_token",
    "token_revoked",  # Slack
    "token_expired",  # Slack
    "expired_token",
    "invalid_token",
    "interaction_required",  # OpenID Connect / Entra ID: the user must sign in again
    "consent_required",
    "login_required",
    "account_inactive",  # Slack
    "oauthexception:190",  # Facebook: access token expired, invalidated or app removed
    "oauthexception:102",  # Facebook: session key invalid
    "invalid_code",  # Zoho: a revoked refresh token
)
# Only the user can cure it (verify an email, complete MFA, consent), then authorize again.
USER_ACTION_TEXT = (
    r"\b(user|account) (must|has to|needs to|is required to) (sign|log) ?in\b|"
    r"\b(user|account) (must|has to|needs to|is required to) (re-?authenticate|re-?authori[sz]e|"
    r"re-?consent|consent|verify|confirm|complete|be verified|be confirmed)\b|"
    r"\b(unverified|unconfirmed) (user|account|e-?mail)\b"
)
FORMAT_TEXT = (
    r"grant_type|content[- ]?type|media type|(malformed|invalid|unreadable) (json|body)|"
    r"malformed request|"  # Amazon LWA: parameters not sent as a form body
    # A field we always send reported missing: the app could not read this body.
    r"\bmissing\b.{0,30}\b(grant_type|refresh_token|code(?![ _-]?verifier)|client_id|"
    r"redirect_uri)\b|\b(grant_type|refresh_token|code(?![ _-]?verifier)|client_id|"
    r"redirect_uri)\b.{0,20}\b(is )?(missing|required)\b"
)
# A code named as expired or spent, even among other suspects (LinkedIn: "appid/redirect
# uri/code verifier does not match ... Or authorization code expired").
SPENT_CODE_TEXT = (
    r"\b(authori[sz]ation |auth |verification )?code (is |has |was )?(already )?(been )?"
    r"(expired|used|redeemed)\b"
)
TOO_EARLY_TEXT = (
    r"\b(token|it) (is |has )?not (yet )?expired\b|^not (yet )?expired\b|\btoo (early|soon)\b|"
    r"\bnot yet eligible\b|\bcannot (be )?refresh(ed)? (yet|before)\b"
)
TOO_EARLY_CODES = _codes("invalid_grant", "invalid_request", "", "too_early", "token_not_expired")
REDIRECT_TEXT = (
    r"redirect[_ ]?ur[il].{0,60}(mismatch|does ?n[o']t match|not match|not registered|"
    r"invalid|identical|differ)|(mismatch|invalid|unregistered).{0,30}redirect[_ ]?ur[il]"
)
CLIENT_TEXT = (
    r"\binvalid client\b|client (id|secret|credentials?|authentication)\b.{0,40}"
    r"(invalid|incorrect|wrong|failed|not (found|valid)|unknown|mismatch)|"
    r"(invalid|incorrect|wrong|unknown|bad) client[ _](id|secret|credentials?)|"
    r"error validating client secret|client authentication failed|AADSTS7000215|AADSTS700016|"
    # credentials not found where the app looked: another flavor sends them elsewhere
    r"credentials (are |were )?(missing|required|not (provided|found|sent))|"
    r"missing (valid )?(authori[sz]ation header|client credentials|credentials)|"
    r"client was not identified|\bunknown_client\b"
)
SCOPE_TEXT = (
    r"\bscopes? (is |are )?(invalid|unknown|not (allowed|valid|supported|permitted))\b|"
    r"\b(invalid|unknown|unsupported) scopes?\b"
)
DEAD_CODE_TEXT = (
    r"(authori[sz]ation |verification |auth )?code\b.{0,60}(expired|used|redeemed|invalid|"
    r"not (found|valid)|does ?n[o']t exist|does not match|revoked|consumed)|"
    r"\b(invalid|expired|used|unknown|bad)[ _-]+((authori[sz]ation|verification|auth|grant)[ _-]+)?"
    r"code\b|"
    r"code verifier|AADSTS54005|AADSTS70008|AADSTS70000|AADSTS50148|" + USER_ACTION_TEXT
)
DEAD_REFRESH_TEXT = (
    r"refresh[_ ]?token.{0,60}(invalid|expired|revoked|not (found|valid|active)|unknown|"
    r"malformed|inactive|does ?n[o']t exist|already (been )?used)|"
    r"(invalid|expired|revoked|unknown).{0,25}refresh[_ ]?token|"
    r"token (is )?(not active|inactive|revoked|expired|invalid)|invalid token|"
    r"session (is )?(not active|has expired|expired|invalidated)|"
    r"value passed for the token was invalid|error validating access token|"
    r"user (is )?(inactive|disabled|deleted|suspended)|"
    r"AADSTS700082|AADSTS70008|AADSTS50173|AADSTS700084|AADSTS50076|AADSTS65001|AADSTS50078|"
    + USER_ACTION_TEXT
)

RULES: tuple[Rule, ...] = (
    # --- transient: wait and retry (one request; another flavor would only add load)
    Rule(G.RATE_LIMITED, O.TRANSIENT, "RFC 6585 §4: 429 Too Many Requests", statuses=(429, 429)),
    Rule(
        G.RATE_LIMITED,
        O.TRANSIENT,
        "Slack ratelimited, Facebook codes 4/17/32/613",
        codes=RATE_LIMIT_CODES,
    ),
    Rule(
        G.RATE_LIMITED,
        O.TRANSIENT,
        "rate limits in a 4xx description (Discord)",
        text=r"rate.?limit|too many requests",
        codes=_codes("", "invalid_request", "access_denied", "error", "too_many_requests"),
        statuses=(400, 499),
    ),
    # --- wrong endpoint: no flavor can change a 404 or 405
    Rule(
        G.WRONG_TOKEN_URL,
        O.WRONG_ENDPOINT,
        "HTTP 404/405/410 from the token URL",
        statuses=(404, 405),
    ),
    Rule(G.WRONG_TOKEN_URL, O.WRONG_ENDPOINT, "HTTP 410 Gone", statuses=(410, 410)),
    # --- benign: a refresh refused as "too early" keeps the tokens (Strava, Zoho wordings)
    Rule(
        G.TOO_EARLY,
        O.BENIGN,
        "refresh refused while the token still works",
        text=TOO_EARLY_TEXT,
        codes=TOO_EARLY_CODES,
        grants=frozenset({REFRESH, CLIENT_CREDENTIALS}),
    ),
    # --- the redirect URI: an App setting, never a flavor
    Rule(
        G.REDIRECT_URI_MISMATCH,
        O.WRONG_ENDPOINT,
        "GitHub, Google, Slack, HubSpot codes",
        codes=REDIRECT_CODES,
    ),
    Rule(
        G.CODE_REJECTED,
        O.GRANT_DEAD,
        "a code named expired or used (no redirect error code), even when the redirect "
        "URI is also suspected (LinkedIn); we send the redirect URI we authorized with",
        text=SPENT_CODE_TEXT,
        statuses=(200, 499),
        grants=frozenset({EXCHANGE}),
    ),
    Rule(
        G.REDIRECT_URI_MISMATCH,
        O.WRONG_ENDPOINT,
        "redirect URI complaint in the text",
        text=REDIRECT_TEXT,
        grants=frozenset({EXCHANGE}),
    ),
    # --- outages named in a 4xx/200 body
    Rule(G.SERVER_ERROR, O.TRANSIENT, "an outage named by code (known flavor)", codes=OUTAGE_CODES),
    # --- client authentication: the next flavor may send the credentials differently
    Rule(
        G.BAD_CLIENT_CREDENTIALS,
        O.NEXT_FLAVOR,
        "RFC 6749 §5.2 invalid_client and cousins",
        codes=CLIENT_CODES,
    ),
    Rule(
        G.BAD_CLIENT_CREDENTIALS,
        O.NEXT_FLAVOR,
        "Keycloak: unauthorized_client 'Invalid client secret'; X: 'Missing valid "
        "authorization header'; HubSpot: status 'error', credentials missing",
        codes=_codes("unauthorized_client", "invalid_request", "access_denied", "error", ""),
        text=CLIENT_TEXT,
    ),
    # --- format: this flavor's body could not be read
    Rule(G.FORMAT_REJECTED, O.NEXT_FLAVOR, "HTTP 415 Unsupported Media Type", statuses=(415, 415)),
    Rule(
        G.FORMAT_REJECTED,
        O.NEXT_FLAVOR,
        "unsupported_grant_type: grant_type unreadable",
        codes=FORMAT_CODES,
    ),
    Rule(
        G.FORMAT_REJECTED,
        O.NEXT_FLAVOR,
        "invalid_request naming grant_type or the body type",
        codes=_codes("invalid_request", ""),
        text=FORMAT_TEXT,
    ),
    # --- a scope refused in other words (Strava's errors list: Authorize scope invalid)
    Rule(
        G.INVALID_SCOPE,
        O.WRONG_ENDPOINT,
        "invalid scope named in the text, any code",
        text=SCOPE_TEXT,
        statuses=(200, 499),
    ),
    # --- the grant is dead: a spent code or a revoked refresh token (one request)
    Rule(
        G.CODE_REJECTED,
        O.GRANT_DEAD,
        "RFC 6749 §5.2 invalid_grant; GitHub, Slack, HubSpot",
        codes=DEAD_CODE_CODES,
        grants=frozenset({EXCHANGE}),
    ),
    Rule(
        G.CODE_REJECTED,
        O.GRANT_DEAD,
        "a spent code in other words (Facebook code 100, LinkedIn, Strava, Zoom)",
        text=DEAD_CODE_TEXT,
        statuses=(200, 499),
        grants=frozenset({EXCHANGE}),
    ),
    Rule(
        G.REFRESH_TOKEN_REVOKED,
        O.GRANT_DEAD,
        "Atlassian: 403 unauthorized_client 'refresh_token is invalid'; Zoom, X",
        text=DEAD_REFRESH_TEXT,
        statuses=(200, 499),
        grants=frozenset({REFRESH}),
    ),
    Rule(
        G.REFRESH_TOKEN_REVOKED,
        O.GRANT_DEAD,
        "RFC 6749 §5.2 invalid_grant; GitHub, Slack, HubSpot, Facebook 190",
        codes=DEAD_REFRESH_CODES,
        grants=frozenset({REFRESH}),
    ),
    Rule(
        G.REFRESH_TOKEN_REVOKED,
        O.GRANT_DEAD,
        "Google: unauthorized_client when the refresh token belongs to another client",
        codes=_codes("unauthorized_client"),
        grants=frozenset({REFRESH}),
    ),
    # --- App settings no flavor can fix
    Rule(
        G.UNAUTHORIZED_CLIENT,
        O.WRONG_ENDPOINT,
        "client credentials refused as invalid_grant: no user grant to be dead, the app "
        "refuses this client the grant (Salesforce 'authentication failure': the flow is "
        "not enabled or has no Run As user)",
        codes=_codes("invalid_grant"),
        grants=frozenset({CLIENT_CREDENTIALS}),
    ),
    Rule(
        G.INVALID_SCOPE,
        O.WRONG_ENDPOINT,
        "RFC 6749 §5.2 invalid_scope",
        codes=_codes("invalid_scope", "scope_not_allowed"),
    ),
    Rule(
        G.UNAUTHORIZED_CLIENT,
        O.WRONG_ENDPOINT,
        "RFC 6749 §5.2 unauthorized_client",
        codes=_codes("unauthorized_client", "unsupported_grant"),
    ),
    # --- what remains: read the status
    Rule(G.BAD_CLIENT_CREDENTIALS, O.NEXT_FLAVOR, "HTTP 401 (RFC 6749 §5.2)", statuses=(401, 401)),
)


def classify_reply(facts: ReplyFacts) -> tuple[Key, Outcome]:
    """The diagnosis key and outcome of one refused reply (see ``RULES``)."""
    if facts.status >= 500:
        # Some servers answer a body they cannot parse with a 500: only a flavor known
        # to work makes a 5xx an outage for sure (README: the mock endpoint's six 500s).
        return Key.SERVER_ERROR, (O.TRANSIENT if facts.known_flavor else O.NEXT_FLAVOR)
    for rule in RULES:
        if rule.matches(facts):
            if rule.key is Key.SERVER_ERROR and not facts.known_flavor:
                return Key.SERVER_ERROR, O.NEXT_FLAVOR
            return rule.key, rule.outcome
    if facts.html:
        if facts.status < 400:
            return Key.NOT_A_TOKEN_ENDPOINT, O.WRONG_ENDPOINT  # a web page answered 2xx
        return (Key.FORMAT_REJECTED if facts.json_flavor else Key.NOT_A_TOKEN_REPLY), O.NEXT_FLAVOR
    if facts.json_flavor and (not facts.error or facts.error == "invalid_request"):
        return Key.FORMAT_REJECTED, O.NEXT_FLAVOR  # a form-only server refusing JSON
    if not facts.readable or not facts.error:
        return Key.NOT_A_TOKEN_REPLY, O.NEXT_FLAVOR
    return Key.REJECTED, O.NEXT_FLAVOR


def verdict_for_reply(facts: ReplyFacts, *, retry_after: float | None, flavor: int) -> Verdict:
    """``classify_reply`` as a ``Verdict`` carrying the reply's code, text and wait."""
    key, outcome = classify_reply(facts)
    return Verdict(
        key=key,
        outcome=outcome,
        error=facts.error,
        text=facts.text,
        status=facts.status,
        retry_after=retry_after,
        flavor=flavor,
    )
