// postdesk: small enhancements shared by every page. Pages work without them.
"use strict";

// Times arrive as <time datetime="...Z">UTC text</time>; show them in the browser's zone.
function showLocalTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      el.textContent = format.format(when);
      el.title = when.toISOString();
    }
  }
}

// Forms or buttons with data-confirm ask before they submit.
function confirmBeforeSubmit(root) {
  root.addEventListener("submit", (event) => {
    const button = event.submitter;
    const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
}

// A modal <dialog>: focus moves in, Escape closes it (the browser's own), focus returns.
function openDialog(dialog, opener) {
  dialog.returnFocusTo = opener || document.activeElement;
  if (!dialog.open) {
    dialog.showModal();
  }
  const first = dialog.querySelector("[autofocus], input:not([type=hidden]), select, textarea, button");
  if (first) {
    first.focus();
  }
}

function closeDialog(dialog) {
  if (dialog.open) {
    dialog.close();
  }
}

function watchDialogs(root) {
  for (const dialog of root.querySelectorAll("dialog")) {
    dialog.addEventListener("close", () => {
      const back = dialog.returnFocusTo;
      if (back && typeof back.focus === "function") {
        back.focus();
      }
    });
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// JSON to the REST API with the session cookie and the CSRF header.
async function apiCall(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

window.postdesk = { openDialog, closeDialog, apiCall, csrfToken, showLocalTimes };

document.addEventListener("DOMContentLoaded", () => {
  showLocalTimes(document);
  confirmBeforeSubmit(document);
  watchDialogs(document);
});
