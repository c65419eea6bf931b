"""`{% load ui %}`: pieces of the console's pages that every list shares.

Row actions, one menu per row (issue 12 item 8), reachable at any width::

    {% row_actions label=record.name %}
      <a class="dropdown-item" href="…">Rename</a>
      <a class="dropdown-item text-danger" href="…">Revoke</a>
    {% endrow_actions %}

Put links (or `<button class="dropdown-item">` inside a form) between the tags; when the body
renders empty (the member may do nothing to this row), nothing is shown at all.
"""

from django import template
from django.template.base import token_kwargs
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


class RowActionsNode(template.Node):
    def __init__(self, nodelist, label):
        self.nodelist = nodelist
        self.label = label

    def render(self, context):
        items = mark_safe(self.nodelist.render(context).strip())  # noqa: S308 (rendered template)
        if not items:
            return ""
        label = self.label.resolve(context) if self.label is not None else ""
        aria = f"Actions for {label}" if label else "Actions"
        # strategy "fixed": the menu is not clipped by the table's scrolling container.
        return format_html(
            '<div class="dropdown row-actions" hx-boost="false">'
            '<button class="btn btn-sm btn-outline-secondary dropdown-toggle" type="button" '
            'data-bs-toggle="dropdown" aria-expanded="false" aria-label="{}" '
            'data-bs-popper-config=\'{{"strategy":"fixed"}}\' data-testid="row-actions">'
            "Actions</button>"
            '<div class="dropdown-menu dropdown-menu-end">{}</div></div>',
            aria,
            items,
        )


@register.tag
def row_actions(parser, token):
    bits = token.split_contents()[1:]
    kwargs = token_kwargs(bits, parser)
    if bits or set(kwargs) - {"label"}:
        raise template.TemplateSyntaxError("{% row_actions %} takes only label=…")
    nodelist = parser.parse(("endrow_actions",))
    parser.delete_first_token()
    return RowActionsNode(nodelist, kwargs.get("label"))
