from .filters import MemberFilter
from .listing import OrgTableView
from .selectors import members_for_list
from .tables import MemberTable


class MemberListView(OrgTableView):
    capability = "members.view"
    table_class = MemberTable
    filterset_class = MemberFilter
    template_name = "members/member_list.html"
    export_name = "members"

    def get_queryset(self):
        return members_for_list(self.organization)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="members", **kwargs)
