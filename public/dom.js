/** The element with this id: the page's modules find their parts of index.html by id. */
export const byId = (id) => document.getElementById(id)
