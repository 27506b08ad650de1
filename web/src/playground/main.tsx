import { render } from "preact";
import "../styles/common.css";
import "../styles/playground.css";
import { App } from "./app.tsx";

render(<App />, document.getElementById("app")!);
