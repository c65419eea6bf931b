import django_tables2 as tables

from .models import Membership


class MemberTable(tables.Table):
    name = tables.Column(accessor="user__name", verbose_name="Name", order_by=("user__name",))
    email = tables.Column(accessor="user__email", verbose_name="Email", order_by=("user__email",))
    role = tables.Column()
    joined_at = tables.DateTimeColumn(verbose_name="Joined", format="Y-m-d")
    last_login = tables.DateTimeColumn(
        accessor="user__last_login", verbose_name="Last login", format="Y-m-d H:i"
    )

    class Meta:
        model = Membership
        fields = ("name", "email", "role", "joined_at", "last_login")
        order_by = ("email",)
