from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("limits/", views.limits, name="limits"),
    path("limits/new/", views.limit_new, name="limit_new"),
    path("limits/<int:limit_id>/edit/", views.limit_edit, name="limit_edit"),
    path("limits/<int:limit_id>/remove/", views.limit_remove, name="limit_remove"),
    path("limit-requests/", views.increase_requests, name="increase_requests"),
    path(
        "limit-requests/<int:request_id>/approve/",
        views.increase_request_approve,
        name="increase_request_approve",
    ),
    path(
        "limit-requests/<int:request_id>/deny/",
        views.increase_request_deny,
        name="increase_request_deny",
    ),
    path("credits/", views.credits_page, name="credits"),
    path("receipts/<int:charge_id>/", views.receipt, name="receipt"),
    path("invoices/", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:invoice_id>/print/", views.invoice_print, name="invoice_print"),
    path("invoices/<int:invoice_id>/csv/", views.invoice_csv, name="invoice_csv"),
    path("invoices/<int:invoice_id>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/pay/", views.invoice_pay, name="invoice_pay"),
    path("invoices/<int:invoice_id>/void/", views.invoice_void, name="invoice_void"),
    path("payments/", views.PaymentListView.as_view(), name="payments"),
    path("payment-methods/", views.payment_methods, name="payment_methods"),
    path("payment-methods/new/", views.payment_method_add, name="payment_method_add"),
    path(
        "payment-methods/<int:method_id>/default/",
        views.payment_method_default,
        name="payment_method_default",
    ),
    path(
        "payment-methods/<int:method_id>/remove/",
        views.payment_method_remove,
        name="payment_method_remove",
    ),
    path("contact/", views.contact, name="contact"),
    path("statements/", views.statements, name="statements"),
    path("statements/<int:workspace_id>/<str:month>/", views.statement, name="statement"),
]
