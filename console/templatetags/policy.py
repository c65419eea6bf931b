from django import template

from members.policy import can as policy_can

register = template.Library()


@register.simple_tag(takes_context=True)
def can(context, capability: str, obj=None) -> bool:
    """`{% can "apikeys.manage" key as allowed %}`: the role policy, asked from a template."""
    return policy_can(context.get("membership"), capability, obj)
