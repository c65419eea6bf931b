"""An invoice as a PDF, drawn with fpdf2 (pure Python: no system libraries, unlike
WeasyPrint's Pango). Core PDF fonts cover Latin-1 only: text outside it is transliterated."""

from __future__ import annotations

import unicodedata

from fpdf import FPDF

from . import money, periods
from .models import Invoice, LineGroup


def _latin1(text: str) -> str:
    text = (text or "").replace("—", "-").replace("•", "*").replace("…", "...")
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        plain = unicodedata.normalize("NFKD", text).encode("latin-1", "ignore").decode("latin-1")
        return plain or "?"


def invoice_pdf_bytes(invoice: Invoice) -> bytes:
    organization = invoice.organization
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    title = f"Invoice {invoice.number}" if invoice.number else "Draft invoice"
    pdf.cell(0, 10, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    bill_to = invoice.bill_to or {}
    facts = [
        f"Organization: {organization.name}",
        f"Period: {periods.period_label(invoice.period_start)}",
        f"Status: {invoice.get_status_display()}",
    ]
    if invoice.issued_at:
        facts.append(f"Issued: {invoice.issued_at:%Y-%m-%d}")
    if invoice.due_on:
        facts.append(f"Due: {invoice.due_on:%Y-%m-%d}")
    facts.append(f"Bill to: {bill_to.get('name') or organization.name}")
    for extra in ("email", "address", "tax_id"):
        if bill_to.get(extra):
            facts.append(f"{extra.replace('_', ' ').capitalize()}: {bill_to[extra]}")
    for fact in facts:
        pdf.multi_cell(0, 5, _latin1(fact), new_x="LMARGIN", new_y="NEXT")
    for group, heading in ((LineGroup.MODEL, "By model"), (LineGroup.WORKSPACE, "By workspace")):
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        align = ("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")
        with pdf.table(col_widths=(70, 25, 30, 30, 25), text_align=align) as table:
            table.row(["Description", "Requests", "Input tokens", "Output tokens", "Amount"])
            for line in invoice.lines.filter(group=group):
                table.row(
                    [
                        _latin1(line.description),
                        f"{line.requests:,}",
                        f"{line.input_tokens:,}",
                        f"{line.output_tokens:,}",
                        money.cents_text(line.amount_cents),
                    ]
                )
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, f"Total: {money.cents_text(invoice.total_cents)}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    paid = (
        f"Paid: {money.cents_text(invoice.paid_cents)}   Due: {money.cents_text(invoice.due_cents)}"
    )
    pdf.cell(0, 6, paid, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
