// lane's console: a JSON field is checked as it is typed, so a form that would be refused is not sent.
"use strict";
document.addEventListener("input", function (event) {
  var field = event.target;
  if (!field.matches || !field.matches("textarea[data-json]")) return;
  var problem = "";
  if (field.value.trim() !== "") {
    try { JSON.parse(field.value); } catch (error) { problem = "This field must be JSON: " + error.message; }
  }
  field.setCustomValidity(problem);
});
