// socket.io-client over upgrade against ferry (the cases are in tests/lib/sio-suite.mjs).
import { defineSuite } from "../lib/sio-suite.mjs";

defineSuite("upgrade");
