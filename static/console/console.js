// Copy-to-clipboard buttons: <button data-copy-target="#id">. No framework, no build step.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copyTarget);
  if (!source) return;
  const text = source.value ?? source.textContent;
  navigator.clipboard.writeText(text.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// The organization's address, shown live under a slug field (templates/partials/slug_field.html).
// An empty slug is made from the name, roughly as the server does (console/forms.py derive_slug).
function slugFromName(name) {
  return name.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 48).replace(/-+$/, "");
}
document.addEventListener("input", (event) => {
  for (const preview of document.querySelectorAll("[data-slug-preview]")) {
    const slugInput = document.querySelector(preview.dataset.slugInput);
    const nameInput = document.querySelector(preview.dataset.nameInput);
    if (event.target !== slugInput && event.target !== nameInput) continue;
    const typed = slugInput ? slugInput.value.trim() : "";
    const slug = typed || (nameInput ? slugFromName(nameInput.value) : "");
    preview.querySelector("span").textContent = slug || "…";
  }
});

// No inline handlers (the Content-Security-Policy allows none): <button data-print> prints the
// page, <select data-autosubmit> submits its form when changed.
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.submit();
});

// Parts of a page that refresh themselves (htmx `every Ns` polls with data-live-refresh, e.g. the
// usage dashboard: templates/usage/_live.html) ask for the address bar's page, whose filters,
// sort and page every swap has pushed; they skip their polls while the tab is hidden, and the
// `visibilitychange` trigger they also listen to refreshes them as soon as it shows again.
document.addEventListener("htmx:configRequest", (event) => {
  if (event.detail.elt.matches("[data-live-refresh]")) {
    event.detail.path = window.location.pathname + window.location.search;
  }
});
document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden && event.detail.elt.matches("[data-live-refresh]")) event.preventDefault();
});
