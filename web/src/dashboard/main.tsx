import { render } from "preact";
import "../styles/common.css";

render(<p>Dashboard: coming.</p>, document.getElementById("app")!);
