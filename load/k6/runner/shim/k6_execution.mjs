// k6/execution: the VU's and the scenario's counters, as the runner sets them per iteration.
import { state } from './runtime.mjs';

const exec = {
  vu: {
    get idInTest() {
      return state.idInTest;
    },
    get iterationInScenario() {
      return state.iterationInScenario;
    },
    get iterationInInstance() {
      return state.iterationInInstance;
    },
  },
  scenario: {
    get name() {
      return state.scenario;
    },
    get iterationInTest() {
      return state.iterationInTest;
    },
  },
};
export default exec;
