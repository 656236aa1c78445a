// Submits the first form marked data-autosubmit once the page has loaded.
// Mail scanners fetch links but do not run scripts, so a scanner's visit
// changes nothing, while a person's click needs no second click.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (form) { form.submit(); }
});
