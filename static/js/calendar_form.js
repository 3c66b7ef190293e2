// The event form: the availability box follows the day, the time zone and the people picked.
// Without this script the form's "Check availability" button shows the same list.
(() => {
  function refresh(form) {
    const box = form.querySelector("#availability");
    if (!box || typeof htmx === "undefined") return;
    const params = new URLSearchParams();
    params.set("date", form.elements.start_date.value);
    params.set("time_zone", form.elements.time_zone.value);
    for (const input of form.querySelectorAll("#picker-chips input[name=invitee]")) {
      params.append("participant", input.value);
    }
    htmx.ajax("GET", `${box.dataset.url}?${params}`, { target: box, swap: "innerHTML" });
  }

  document.addEventListener("change", (event) => {
    const form = event.target.closest && event.target.closest("#event-form");
    if (form && (event.target.name === "start_date" || event.target.name === "time_zone")) refresh(form);
  });

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("event-form");
    const chips = document.getElementById("picker-chips");
    if (!form || !chips) return;
    // The picker adds and removes chips itself; a chip coming or going is a new participant list.
    new MutationObserver(() => refresh(form)).observe(chips, { childList: true });
  });
})();
