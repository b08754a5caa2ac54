// The UTF-8 stress sequences of groups 6.5-6.23 (Markus Kuhn's UTF-8 decoder test, as the
// conformance list describes it), one text message each. valid: echo expected; invalid: 1007.
// Written as hex so that every byte is visible.
const h = (s) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const range = (a, b, sep = "") => {
  let s = "";
  for (let i = a; i < b; i++) s += i.toString(16).padStart(2, "0") + sep;
  return s;
};
export const KOSME = h("ce ba e1 bd b9 cf 83 ce bc ce b5"); // "κόσμε"

function prefixes() {
  const out = [];
  for (let i = 1; i <= KOSME.length; i++) {
    const p = KOSME.subarray(0, i);
    out.push([[2, 5, 7, 9, 11].includes(i), p.toString("hex")]);
  }
  return out;
}

function nonCharacters() {
  const out = [[true, "efbfbe"], [true, "efbfbf"]];
  for (const z1 of ["f0", "f1", "f2", "f3", "f4"])
    for (const z2 of ["8f", "9f", "af", "bf"]) {
      if (z1 === "f4" && z2 !== "8f") continue; // above U+10FFFF
      for (const z3 of ["be", "bf"]) {
        const s = z1 + z2 + "bf" + z3;
        if (s === "f08fbfbe" || s === "f08fbfbf") continue; // overlong
        out.push([true, s]);
      }
    }
  return out;
}

const truncated = ["c0", "e080", "f08080", "f8808080", "fc80808080", "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf"];
const hello = (mid) => "68656c6c6f" + mid + "776f726c64"; // "hello" .. "world"

// [group title, [[valid, hex], ...]] for 6.5, 6.6, ... 6.23 in order.
export const UTF8_GROUPS = [
  ["valid UTF-8 with multi-byte code points", [[true, hello("24")], [true, hello("c2a2")], [true, hello("e282ac")], [true, hello("f0a4ada2")], [true, KOSME.toString("hex")]]],
  ["all prefixes of a valid multi-byte string", prefixes()],
  ["first possible sequence of each length", [[true, "00"], [true, "c280"], [true, "e0a080"], [true, "f0908080"]]],
  ["first sequence of length 5/6 (invalid)", [[false, "f888808080"], [false, "fc8480808080"]]],
  ["last possible sequence of each length", [[true, "7f"], [true, "dfbf"], [true, "efbfbf"], [true, "f48fbfbf"]]],
  ["last sequence of length 4/5/6 (invalid)", [[false, "f7bfbfbf"], [false, "fbbfbfbfbf"], [false, "fdbfbfbfbfbf"]]],
  ["other boundary conditions", [[true, "ed9fbf"], [true, "ee8080"], [true, "efbfbd"], [true, "f48fbfbf"], [false, "f4908080"]]],
  ["unexpected continuation bytes", [[false, "80"], [false, "bf"], [false, "80bf"], [false, "80bf80"], [false, "80bf80bf"], [false, "80bf80bf80"], [false, "80bf80bf80bf"], [false, range(0x80, 0xbf)]]],
  ["lonely start bytes", [[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]].map(([a, b]) => [false, range(a, b, "20")])],
  ["sequences with the last continuation byte missing", truncated.map((s) => [false, s])],
  ["concatenation of incomplete sequences", [[false, truncated.join("")]]],
  ["impossible bytes", [[false, "fe"], [false, "ff"], [false, "fefeffff"]]],
  ["overlong ASCII", [[false, "c0af"], [false, "e080af"], [false, "f08080af"], [false, "f8808080af"], [false, "fc80808080af"]]],
  ["maximum overlong sequences", [[false, "c1bf"], [false, "e09fbf"], [false, "f08fbfbf"], [false, "f887bfbfbf"], [false, "fc83bfbfbfbf"]]],
  ["overlong NUL", [[false, "c080"], [false, "e08080"], [false, "f0808080"], [false, "f880808080"], [false, "fc8080808080"]]],
  ["single UTF-16 surrogates", ["eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf"].map((s) => [false, s])],
  ["paired UTF-16 surrogates", ["eda080edb080", "eda080edbfbf", "edadbfedb080", "edadbfedbfbf", "edae80edb080", "edae80edbfbf", "edafbfedb080", "edafbfedbfbf"].map((s) => [false, s])],
  ["non-characters (valid UTF-8)", nonCharacters()],
  ["Unicode specials (valid)", ["efbfb9", "efbfba", "efbfbb", "efbfbc", "efbfbd", "efbfbe", "efbfbf"].map((s) => [true, s])],
].map(([title, list]) => [title, list.map(([valid, hex]) => [valid, h(hex)])]);
