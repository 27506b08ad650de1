import { render } from "preact";
import "../styles/common.css";
import "../styles/dashboard.css";
import { Dashboard } from "./app.tsx";

render(<Dashboard />, document.getElementById("app")!);
