/* Copy-to-clipboard for the id buttons in the horsies_django admin (no framework needed). */
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest(".hz-copy");
  if (!button) return;
  event.preventDefault();
  const text = button.dataset.copy;
  const title = button.title;
  const done = () => {
    button.classList.add("hz-copied");
    button.title = "Copied";
    setTimeout(() => { button.classList.remove("hz-copied"); button.title = title; }, 1200);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => window.prompt("Copy the id:", text));
  } else {
    window.prompt("Copy the id:", text);
  }
});
