// Tandem console: live job progress (polling) and the transcript comparison upload.
// No inline script anywhere (the Content-Security-Policy forbids it); no dependencies.
"use strict";

function poll(el) {
  const url = el.getAttribute("data-live");
  const tick = () => {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then((r) => {
        // Sent to the sign-in page: the session ended (expired, signed out, token revoked).
        if (r.redirected) window.location.reload();
        return r.ok && !r.redirected ? r.text() : Promise.reject(r.status);
      })
      .then((html) => {
        el.innerHTML = html; // server-rendered, escaped HTML of this origin
        if (el.querySelector("[data-final]")) {
          // The job ended: reload once so the page shows the transcript's report.
          window.location.reload();
          return;
        }
        if (el.id === "jobs" && !el.querySelector(".s-running, .s-pending")) return;
        setTimeout(tick, 1000);
      })
      .catch(() => setTimeout(tick, 3000));
  };
  if (!el.querySelector("[data-final]")) setTimeout(tick, 1000);
}

function compare(button) {
  const input = document.getElementById("peer-transcript");
  const out = document.getElementById("comparison");
  if (!input.files.length) {
    out.textContent = "Choose the peer's transcript file first.";
    return;
  }
  out.textContent = "Comparing…";
  fetch(button.getAttribute("data-url"), {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": button.getAttribute("data-csrf"), "Content-Type": "application/octet-stream" },
    body: input.files[0],
  })
    .then((r) => r.text())
    .then((html) => { out.innerHTML = html; })
    .catch((e) => { out.textContent = "Upload failed: " + e; });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(poll);
  const button = document.getElementById("compare");
  if (button) button.addEventListener("click", () => compare(button));
});
