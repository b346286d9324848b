// Building and finding the page's elements. el() is the only way server text reaches the
// page: string children become text nodes, never markup.

export const $ = (id) => document.getElementById(id);

// One of el()'s attributes: null, undefined and false leave it out.
function setAttribute(node, key, value) {
  if (value === null || value === undefined || value === false) return;
  if (key === "class") node.className = value;
  else if (key === "text") node.textContent = value;
  else if (key === "dataset") Object.assign(node.dataset, value);
  else if (key === "style") Object.assign(node.style, value);
  else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
  else node.setAttribute(key, value === true ? "" : String(value));
}

// Builds an element; string children become text nodes, never markup.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) setAttribute(node, key, value);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function cssVariable(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function fillSelect(select, options, selected) {
  const signature = JSON.stringify(options);
  if (select.dataset.options !== signature) {
    select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
    select.dataset.options = signature;
  }
  select.value = selected;
}
