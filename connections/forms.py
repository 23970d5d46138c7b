"""Admin forms: the client secret is write-only."""

from __future__ import annotations

from typing import Any

from django import forms

from connections.models import App


class AppForm(forms.ModelForm):
    """Never renders the stored secret; a blank secret field keeps the current one."""

    client_secret = forms.CharField(
        required=False,
        strip=False,  # whitespace is reported, not silently changed
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only.",
    )
    client_id = forms.CharField(max_length=500, strip=False)
    # URLs may hold {placeholders} of customer inputs: the model validates them.
    authorize_url = forms.CharField(
        max_length=2000, required=False, widget=forms.URLInput(attrs={"size": 80})
    )
    token_url = forms.CharField(max_length=2000, widget=forms.URLInput(attrs={"size": 80}))
    docs_url = forms.URLField(max_length=2000, required=False, assume_scheme="https")
    revocation_url = forms.CharField(
        max_length=2000, required=False, widget=forms.URLInput(attrs={"size": 80})
    )

    class Meta:
        model = App
        help_texts = {
            "pinned_flavor": "Send token requests only this way (a flavor is where the client "
            "credentials go and how the body is encoded). Blank: try all six in order, "
            "starting with the one that last worked.",
        }
        fields = (
            "name",
            "slug",
            "grant_type",
            "authorize_url",
            "token_url",
            "revocation_url",
            "client_id",
            "client_secret",
            "default_scopes",
            "scope_separator",
            "offline_strategy",
            "prompt_consent",
            "use_pkce",
            "pinned_flavor",
            "extra_authorize_params",
            "extra_token_params",
            "extra_token_headers",
            "token_path",
            "client_id_param",
            "client_secret_param",
            "preset",
            "docs_url",
            "customer_inputs",
            "allowed_host_suffix",
            "reply_metadata",
            "callback_metadata",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        secret = self.fields["client_secret"]
        if self.instance.pk and self.instance.client_secret:
            secret.help_text = "Write-only: a secret is set. Leave blank to keep it."
        else:
            secret.help_text = "Write-only: no secret is set (a public client)."
        for name in ("authorize_url", "token_url", "revocation_url", "docs_url"):
            if name in self.fields:
                self.fields[name].widget.attrs.setdefault("size", 80)

    def clean_client_secret(self) -> str:
        secret = self.cleaned_data.get("client_secret", "")
        if not secret and self.instance.pk:
            return self.instance.client_secret or ""
        return secret

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        for name in ("client_id", "client_secret"):
            value = cleaned.get(name) or ""
            if value and not value.strip():
                self.add_error(name, "This is only whitespace.")
        return cleaned
