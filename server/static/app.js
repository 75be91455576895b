// Hover details for map markers and dots (elements with data-info), without a library.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("hover");
  if (!box) return;
  document.querySelectorAll("[data-info]").forEach((el) => {
    el.addEventListener("mouseenter", () => { box.textContent = el.dataset.info; box.hidden = false; });
    el.addEventListener("mousemove", (e) => { box.style.left = e.clientX + 14 + "px"; box.style.top = e.clientY + 10 + "px"; });
    el.addEventListener("mouseleave", () => { box.hidden = true; });
  });
});
