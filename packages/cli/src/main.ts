console.log("paradit");
