// The feed page's Copy buttons: copy the address in the field the button names. Without this
// script the fields are still there to select and copy by hand.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.status);
  try {
    await navigator.clipboard.writeText(field.value);
    status.textContent = "Copied.";
  } catch {
    field.select();
    status.textContent = "Press Ctrl+C (or ⌘C) to copy.";
  }
});
