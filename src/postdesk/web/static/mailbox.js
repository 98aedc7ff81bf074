// Mailbox page: dialogs without page loads, provider presets, port suggestions and the test
// email's result inline. The page works without this script; the server renders every
// dialog, and this script asks for the same dialogs with the X-Postdesk-Fragment header.
"use strict";

(() => {
  const FRAGMENT = "X-Postdesk-Fragment";
  const AUTH_CODE_NOTE = ": the password is an authorization code";

  function byId(id) {
    return document.getElementById(id);
  }

  function focusInside(dialog, preferredId) {
    const target = dialog.querySelector("[autofocus]")
      || (preferredId && dialog.querySelector(`#${preferredId}`))
      || dialog.querySelector("input:not([type=hidden]), select, textarea");
    if (target) {
      target.focus();
    }
  }

  // Closing a dialog this script added returns focus to its opener, like app.js does.
  function watchClose(dialog) {
    dialog.addEventListener("close", () => {
      const back = dialog.returnFocusTo;
      if (back && typeof back.focus === "function" && back.isConnected) {
        back.focus();
      }
    });
  }

  // The server's dialog takes the place of the page's one (same element, new content).
  function placeDialog(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("dialog");
    if (!fresh) {
      return null;
    }
    let dialog = byId(fresh.id);
    if (!dialog) {
      dialog = document.createElement("dialog");
      document.querySelector("main").appendChild(dialog);
      watchClose(dialog);
    }
    for (const name of dialog.getAttributeNames()) {
      if (name !== "open" && !fresh.hasAttribute(name)) {
        dialog.removeAttribute(name);
      }
    }
    for (const name of fresh.getAttributeNames()) {
      if (name !== "open") {
        dialog.setAttribute(name, fresh.getAttribute(name));
      }
    }
    const nodes = Array.from(fresh.childNodes);  // a live list: copy it before moving nodes
    dialog.replaceChildren(...nodes.map((node) => document.adoptNode(node)));
    return dialog;
  }

  function fetchFragment(url, init) {
    return fetch(url, {
      ...init,
      credentials: "same-origin",
      headers: { [FRAGMENT]: "1" },
    });
  }

  // A dialog, a place to go, or (anything else) null: the caller falls back to plain forms.
  async function takeAnswer(response) {
    const kind = response.headers.get(FRAGMENT);
    if (kind === "sender" || kind === "delete") {
      const dialog = placeDialog(await response.text());
      if (dialog && kind === "sender") {
        setUpSenderDialog(dialog);
      }
      return dialog;
    }
    const type = response.headers.get("Content-Type") || "";
    if (type.startsWith("application/json")) {
      const data = await response.json();
      if (data && typeof data.location === "string" && data.location.startsWith("/")) {
        window.location.assign(data.location);
        return "leaving";
      }
    }
    return null;
  }

  // Add Sender, Edit and Delete are small GET forms: open their dialog in place.
  async function openFromForm(form, opener) {
    const url = `${form.action}?${new URLSearchParams(new FormData(form))}`;
    let answer = null;
    try {
      answer = await takeAnswer(await fetchFragment(url, { method: "GET" }));
    } catch (_) {
      answer = null;
    }
    if (answer === "leaving") {
      return;
    }
    if (!answer) {
      window.location.assign(url);
      return;
    }
    window.postdesk.openDialog(answer, opener);
  }

  function showTrouble(form, text) {
    let box = form.querySelector(".script-problem");
    if (!box) {
      box = document.createElement("div");
      box.className = "notice error script-problem";
      box.setAttribute("role", "alert");
      box.appendChild(document.createElement("p"));
      form.querySelector(".dialog-body").prepend(box);
    }
    box.firstChild.textContent = text;
  }

  // OK and Send post the form and put the answer in place, keeping the typed password.
  async function sendSenderForm(form, submitter) {
    const target = submitter && submitter.hasAttribute("formaction")
      ? submitter.formAction : form.action;
    const body = new FormData(form);
    const typed = form.elements.password ? form.elements.password.value : "";
    const panel = byId("test-panel");
    const panelOpen = panel && !panel.hidden;
    const testing = target.endsWith("/mailbox/test");
    const button = testing ? byId("test-send") : byId("sender-ok");
    const label = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.textContent = testing ? "Sending…" : "Saving…";
    }
    form.setAttribute("aria-busy", "true");
    let answer = null;
    try {
      answer = await takeAnswer(await fetchFragment(target, { method: "POST", body }));
    } catch (_) {
      answer = null;
    }
    if (answer === "leaving") {
      return;
    }
    if (!answer) {
      form.removeAttribute("aria-busy");
      if (button) {
        button.disabled = false;
        button.textContent = label;
      }
      showTrouble(form, "postdesk did not answer as expected. Check the connection, "
        + "reload the page and try again.");
      return;
    }
    const password = byId("sender-password");
    if (password && typed) {
      password.value = typed;
      const note = byId("sender-password-retype");
      if (note) {
        note.remove();
      }
      updatePasswordNotes();
    }
    if (panelOpen) {
      showTestPanel(true);
    }
    focusInside(answer, testing ? "test-send" : "sender-ok");
    const result = byId("test-result");
    if (result) {
      result.scrollIntoView({ block: "nearest" });
    }
  }

  function showTestPanel(open) {
    const panel = byId("test-panel");
    const toggle = byId("test-toggle");
    if (!panel || !toggle) {
      return;
    }
    panel.hidden = !open;
    toggle.hidden = open;  // once open, the panel itself is the way to send
    toggle.setAttribute("aria-expanded", String(open));
  }

  function setUpSenderDialog(dialog) {
    const panel = dialog.querySelector("#test-panel");
    showTestPanel(Boolean(panel && panel.dataset.open === "true"));
    updatePasswordNotes();
  }

  function applyPreset(select) {
    const option = select.selectedOptions[0];
    const help = byId("provider-help");
    if (!option || !option.value) {
      help.hidden = true;
      return;
    }
    byId("sender-host").value = option.dataset.host;
    byId("sender-port").value = option.dataset.port;
    byId("sender-encryption").value = option.dataset.encryption;
    const code = option.dataset.code === "yes" ? AUTH_CODE_NOTE : "";
    byId("provider-help-title").textContent = option.textContent.trim() + code;
    byId("provider-help-text").textContent = option.dataset.help;
    help.hidden = false;
  }

  // A host typed by hand that is not the preset's: the preset no longer applies.
  function hostEdited(input) {
    const select = byId("sender-preset");
    const option = select && select.selectedOptions[0];
    if (option && option.value && option.dataset.host !== input.value.trim().toLowerCase()) {
      select.value = "";
      byId("provider-help").hidden = true;
    }
  }

  // Changing the encryption suggests its usual port while the port holds another usual one.
  function suggestPort(select) {
    const port = byId("sender-port");
    const option = select.selectedOptions[0];
    const usual = Array.from(select.options, (item) => item.dataset.port);
    const current = port.value.trim();
    if (option && usual.includes(current) && current !== option.dataset.port) {
      port.value = option.dataset.port;
      byId("sender-port-note").textContent =
        `Port set to ${option.dataset.port}, the usual port for ${option.textContent.trim()}.`;
    }
  }

  function valueOf(id) {
    const input = byId(id);
    return input ? input.value : "";
  }

  function sameHost(a, b) {
    const plain = (text) => text.trim().toLowerCase().replace(/\.$/, "")
      .replace(/^\[(.*)\]$/, "$1");
    return plain(a) === plain(b);
  }

  // A login is compared as the server does: exactly, but for the domain of an address.
  function sameLogin(a, b) {
    const plain = (text) => {
      const login = text.trim();
      const at = login.lastIndexOf("@");
      return at < 0 ? login : login.slice(0, at) + login.slice(at).toLowerCase();
    };
    return plain(a) === plain(b);
  }

  // The stored password goes only to the server and login it was saved for: once they
  // change, the field asks for it again (the server refuses the change without it).
  function passwordMoved(saved) {
    const port = valueOf("sender-port").trim() || "25";
    const login = valueOf("sender-username").trim() || valueOf("sender-address");
    return !sameHost(valueOf("sender-host"), saved.host)
      || String(Number(port)) !== saved.port
      || valueOf("sender-encryption") !== saved.encryption
      || !sameLogin(login, saved.login);
  }

  function updatePasswordNotes() {
    const password = byId("sender-password");
    if (!password) {
      return;
    }
    const clear = password.form.elements.clear_password;
    const cleared = Boolean(clear && clear.checked);
    const typed = password.value !== "";
    const rebind = byId("sender-password-rebind");
    if (rebind) {
      const refused = Boolean(byId("sender-password-error"));  // the server said so already
      rebind.hidden = typed || cleared || refused || !passwordMoved(rebind.dataset);
    }
    const plain = byId("sender-password-plain");
    if (plain) {
      const stored = Boolean(rebind) && !cleared;
      plain.hidden = valueOf("sender-encryption") !== "none" || !(typed || stored);
    }
  }

  function openerFor(dialog) {
    const key = dialog.dataset.opener;
    return key ? document.querySelector(`[data-sender-opener="${CSS.escape(key)}"]`) : null;
  }

  document.addEventListener("DOMContentLoaded", () => {
    // A dialog the server rendered open (e.g. /mailbox?dialog=add) becomes a modal one.
    for (const dialog of document.querySelectorAll("dialog[open]")) {
      if (dialog.id === "sender-dialog") {
        setUpSenderDialog(dialog);
      }
      dialog.returnFocusTo = null;
      dialog.addEventListener("close", () => window.postdesk.openDialog(dialog, openerFor(dialog)),
        { once: true });
      dialog.close();
    }

    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (form.matches("form[data-opens-dialog]")) {
        event.preventDefault();
        openFromForm(form, event.submitter);
      } else if (form.id === "sender-form") {
        event.preventDefault();
        sendSenderForm(form, event.submitter);
      }
    });

    document.addEventListener("click", (event) => {
      const closer = event.target.closest("[data-close-dialog]");
      if (closer && closer.closest("dialog")) {
        event.preventDefault();
        window.postdesk.closeDialog(closer.closest("dialog"));
        return;
      }
      if (event.target.closest("#test-toggle")) {
        const panel = byId("test-panel");
        showTestPanel(panel.hidden);
        if (!panel.hidden) {
          byId("test-recipient").focus();
        }
      }
    });

    document.addEventListener("change", (event) => {
      if (event.target.id === "sender-preset") {
        applyPreset(event.target);
      } else if (event.target.id === "sender-encryption") {
        suggestPort(event.target);
      }
      if (event.target.closest("#sender-form")) {
        updatePasswordNotes();
      }
    });

    document.addEventListener("input", (event) => {
      if (event.target.id === "sender-host") {
        hostEdited(event.target);
      }
      if (event.target.closest("#sender-form")) {
        updatePasswordNotes();
      }
    });

    // Enter in the Recipient field sends the test email (elsewhere it means OK).
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.id === "test-recipient") {
        event.preventDefault();
        byId("sender-form").requestSubmit(byId("test-send"));
      }
    });
  });
})();
