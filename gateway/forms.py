import re

from django import forms

from .models import DEFAULT_BASE_URL
from .services import api_key_problem, base_url_problem


class UpstreamForm(forms.Form):
    base_url = forms.URLField(
        label="Base URL",
        # A placeholder, not a value: a filled-in api.anthropic.com read as the upstream in
        # use when the console's default upstream was.
        widget=forms.URLInput(attrs={"placeholder": DEFAULT_BASE_URL}),
        assume_scheme="https",
        help_text="Anthropic's API, or a compatible service: scheme, host and port only.",
    )
    api_key = forms.CharField(
        label="Anthropic API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; only its last 4 characters are shown. Leave empty to keep "
        "the current key.",
    )
    timeout_seconds = forms.IntegerField(
        label="Timeout (seconds)", min_value=1, max_value=3600, initial=600
    )

    def __init__(self, *args, own_address: tuple[list[str], list[int]] = ([], []), **kwargs):
        # Where this console is reached (upstream_rules.request_own_address): never an upstream.
        self.own_urls, self.own_ports = own_address
        super().__init__(*args, **kwargs)

    def clean_base_url(self) -> str:
        base_url = self.cleaned_data["base_url"]
        if problem := base_url_problem(base_url, own_urls=self.own_urls, own_ports=self.own_ports):
            raise forms.ValidationError(problem)
        return base_url

    def clean_api_key(self) -> str:
        api_key = self.cleaned_data["api_key"]
        if api_key and (problem := api_key_problem(api_key)):
            raise forms.ValidationError(problem)
        return api_key


class WorkspacePolicyForm(forms.Form):
    allowed_models = forms.CharField(
        label="Allowed models",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One model id or prefix per line (e.g. claude-haiku-4-5). Empty allows all.",
    )
    max_tokens_ceiling = forms.IntegerField(
        label="max_tokens ceiling",
        required=False,
        min_value=1,
        max_value=1_000_000,
        help_text="Requests asking for more output tokens are refused. Empty: no ceiling.",
    )

    def clean_allowed_models(self) -> list[str]:
        models = [m for m in re.split(r"[\s,]+", self.cleaned_data["allowed_models"]) if m]
        for model in models:
            if not re.fullmatch(r"[A-Za-z0-9._:@/-]{1,128}", model):
                raise forms.ValidationError(f"{model!r} is not a model id.")
        return models
